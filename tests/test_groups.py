"""Comparison groups: every strategy of one workload and runtime in one worker, samples
interleaved and paired; a variant's trap or crash never loses the others' rows."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.strategies import strategy_ratios
from harness.probes.estimate import CallCosts
from harness.run.group import run_group
from harness.run.pipeline import execute
from harness.run.request import Cell, Group, RunRequest, group_cells
from harness.run.resume import Done
from harness.run.schedule import Ledger, make_schedule
from harness.runtimes.wasmtime_runtime import WasmtimeRuntime
from harness.store.rows import ResultRow
from harness.worker.measure import MeasureSettings, rotation

WORKLOAD = "gemm:m=8,n=8,k=8"
STRATEGIES = ("shared", "per-module", "multi-memory")


def _group(regs, runtime=None, strategies=STRATEGIES) -> Group:
    w = regs.workloads.create(WORKLOAD)
    rt = runtime or regs.runtimes.create("wasmtime")
    return Group(tuple(Cell(w, regs.strategies.create(s), rt) for s in strategies))


class _FailingWorker(WasmtimeRuntime):
    """The real wasmtime worker with the `per-module` variant made to fail: loading it
    traps (`trap`), or the process dies in its first inference once every variant has
    warmed up, i.e. during the interleaved samples (`kill`)."""

    NAME = "wasmtime"

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def worker_argv(self) -> list[str]:
        code = ("import os, signal, sys\n"
                "import harness.worker.group as g, harness.worker.main as w\n"
                "import harness.worker.measure as m\n"
                "from harness.runtimes.base import TrapError\n"
                "state = {'loaded': 0, 'warm': 0}\n"
                "real_load, real_warm = g.load_variant, m.warm_up\n"
                "def warm(*a, **k):\n"
                "    out = real_warm(*a, **k)\n"
                "    state['warm'] += 1\n"
                "    return out\n"
                "def load(be, plan, data, settings):\n"
                "    if plan.strategy == 'per-module' and " + repr(self.how) + " == 'trap':\n"
                "        raise TrapError('planted trap')\n"
                "    v = real_load(be, plan, data, settings)\n"
                "    state['loaded'] += 1\n"
                "    if plan.strategy == 'per-module':\n"
                "        run = v.lp.run_once\n"
                "        def dying():\n"
                "            if state['warm'] == state['loaded']:  # sampling\n"
                "                os.kill(os.getpid(), signal.SIGKILL)\n"
                "            run()\n"
                "        v.lp.run_once = dying\n"
                "    return v\n"
                "g.load_variant, m.warm_up = load, warm\n"
                "sys.exit(w.main(sys.argv[1:]))\n")
        return [sys.executable, "-c", code]


def test_rotation_puts_every_variant_in_every_place() -> None:
    orders = [rotation(4, k) for k in range(4)]
    assert all(sorted(o) == [0, 1, 2, 3] for o in orders)
    for place in range(4):
        assert sorted(o[place] for o in orders) == [0, 1, 2, 3]


def test_group_rows_pair_sample_by_sample(regs, quick_settings) -> None:
    rows = run_group(_group(regs), "t", quick_settings, 60, round_index=0)
    assert [r.strategy for r in rows] == list(STRATEGIES)
    assert all(r.status == "ok" for r in rows), [r.reason for r in rows]
    assert {len(r.samples_s) for r in rows} == {quick_settings.samples}
    assert all(r.timing["group"] == 3 and r.kind == "round" for r in rows)
    # each verified and counted on its own: per-module copies, the others do not
    assert rows[1].bytes_copied_per_run > 0 == rows[0].bytes_copied_per_run
    # one process: what each load added, and the group's peak, not a per-cell peak
    assert all("rss_load_delta" in r.memory and "peak_rss" not in r.memory for r in rows)


@pytest.mark.parametrize("how", ["trap", "kill"])
@pytest.mark.parametrize("round_index", [0, 1])  # the load order rotates with the round
def test_a_failing_variant_keeps_the_others(regs, quick_settings, how: str,
                                            round_index: int) -> None:
    """A variant over budget (never sent to a worker) sits before the failing one, so the
    worker's variant indices differ from the group's."""
    strategies = ("shared", "host-call:mode=element", "per-module", "multi-memory")
    costs = CallCosts(host_call_s=1.0, wasm_call_s=1e-9, dispatch_s=1e-6)
    settings = MeasureSettings(warmup_s=0.0, warmup_runs=1, sample_s=0.0005, samples=10)
    rows = run_group(_group(regs, _FailingWorker(how), strategies), "t", settings, 60,
                     round_index=round_index, costs=costs, budget_s=5.0)
    status = {r.strategy: r.status for r in rows}
    assert status == {"shared": "ok", "host-call": "skipped",
                      "per-module": "trapped" if how == "trap" else "crashed",
                      "multi-memory": "ok"}, [r.reason for r in rows]
    if how == "kill":  # blamed on the variant that ran; the others measured again, paired;
        # the suspect then alone, where it died again
        assert "SIGKILL" in rows[2].reason and "measured alone" in rows[2].reason
        assert rows[0].timing["group"] == rows[3].timing["group"] == 2
    else:  # a trap ends the variant inside the worker: the others' samples stand
        assert rows[0].timing["group"] == rows[3].timing["group"] == 3
    ratios = strategy_ratios([_as_cell(r) for r in rows])
    assert [(q.strategy, q.paired) for q in ratios] == [("multi-memory", True)]


def test_v8_runs_a_group_in_its_javascript_worker(regs, quick_settings) -> None:
    """The Node worker speaks the same group protocol: rotation, one row per variant, the
    shared-process memory keys, an unsupported variant ending alone."""
    from harness.probes.probe import probe_runtime

    v8 = regs.runtimes.create("v8")
    probe = probe_runtime(v8)
    if probe.status != "ok":
        pytest.skip(f"v8 unavailable: {probe.message}")
    # as if this V8 lacked multi-memory (Node 20's does): that variant ends alone
    caps = {**probe.capabilities, "multi-memory": {"ok": False, "detail": "pretend"}}
    probe = dataclasses.replace(probe, capabilities=caps)
    group = _group(regs, v8, ("shared", "per-module", "multi-memory", "per-device"))
    rows = run_group(group, "t", quick_settings, 60, probe=probe, round_index=1)
    assert [r.status for r in rows] == ["ok", "ok", "unsupported", "ok"], \
        [r.reason for r in rows]
    ok = [rows[i] for i in (0, 1, 3)]
    assert all(r.timing["group"] == 3 and len(r.samples_s) == quick_settings.samples
               for r in ok)
    assert len({r.timing["group_id"] for r in ok}) == 1
    assert all("rss_load_delta" in r.memory and "peak_rss" not in r.memory for r in ok)
    assert rows[1].bytes_copied_per_run > 0
    # every sample says its pass, as the Python worker's do, so the ratios pair
    assert all(r.timing["passes"] == sorted(set(r.timing["passes"]))
               and len(r.timing["passes"]) == len(r.samples_s) for r in ok)
    assert all(q.paired for q in strategy_ratios([_as_cell(r) for r in ok]))


def _as_cell(r: ResultRow) -> ResultRow:
    from harness.run.rounds import combine_rounds

    return combine_rounds([r])


def test_group_cells_keep_ab_sides_apart(regs) -> None:
    w = regs.workloads.create(WORKLOAD)
    s1, s2 = regs.strategies.create("shared"), regs.strategies.create("per-module")
    rt, v8 = regs.runtimes.create("wasmtime"), regs.runtimes.create("v8")
    cells = [Cell(w, s1, rt), Cell(w, s1, v8), Cell(w, s2, rt), Cell(w, s1, rt, "A"),
             Cell(w, s2, v8)]
    assert group_cells(cells) == [(0, 2), (1, 4), (3,)]


def test_a_run_measures_groups_and_records_them(regs, quick_settings, tmp_path: Path) -> None:
    g = _group(regs)
    req = RunRequest((WORKLOAD,), STRATEGIES, ("wasmtime",), settings=quick_settings,
                     cell_timeout=60, calibrate=False, interference_s=0)
    rows = execute(list(g.cells), tmp_path, req)
    assert [r.status for r in rows] == ["ok"] * 3
    schedule = json.loads((tmp_path / "run.json").read_text())["schedule"]
    assert schedule["units"] == [[0, 1, 2]] and schedule["groups"] == [True]
    ratios = strategy_ratios(rows)
    assert len(ratios) == 2 and all(q.paired and q.rounds == quick_settings.rounds
                                    for q in ratios)


def test_a_resumed_group_round_kept_in_part_is_measured_again(regs) -> None:
    g = _group(regs)
    req = RunRequest((WORKLOAD,), STRATEGIES, ("wasmtime",), settings=MeasureSettings(rounds=2))
    schedule = make_schedule([], list(g.cells), req, MeasureSettings(rounds=2, order_seed=1))

    def row(c: Cell, rnd: int) -> ResultRow:
        return ResultRow(run_id="r", workload=c.workload.spec, strategy=c.strategy.spec,
                         runtime=c.runtime.spec, status="ok", kind="round", round=rnd,
                         samples_s=(1.0,), settings=schedule.settings.to_dict())

    # round 0 complete for all three; round 1 written for the first cell only
    kept = [row(c, 0) for c in g.cells] + [row(g.cells[0], 1)]
    ledger = Ledger.resumed(schedule, Done.from_rows(kept, {}), ["wasmtime"])
    assert ledger.have == [{0}, {0}, {0}]
    assert all(ledger.pending(j, 1) for j in range(3))


def test_paired_ratio_divides_out_shared_drift() -> None:
    """Both variants slowed alike by a drift of the host: the paired ratio sees 1.10 with
    a tight CI; the medians alone would not."""
    from harness.analysis.stats import compare_paired, compare_samples

    rng = np.random.default_rng(3)
    drift = np.exp(rng.normal(0, 0.3, 30))   # 30% swings between samples
    base = 1e-3 * drift * np.exp(rng.normal(0, 0.005, 30))
    cur = 1.1e-3 * drift * np.exp(rng.normal(0, 0.005, 30))
    paired = compare_paired(base, cur, [10, 10, 10])
    unpaired = compare_samples(base, cur)
    assert paired.ci_low < 1.1 < paired.ci_high and paired.ci_high - paired.ci_low < 0.02
    assert unpaired.ci_high - unpaired.ci_low > 5 * (paired.ci_high - paired.ci_low)


def test_slow_variants_take_fewer_samples_but_never_too_few() -> None:
    from harness.worker.measure import MIN_PASSES, samples_for

    s = MeasureSettings(samples=50, sample_s=0.0005)
    # samples of sample_s: every pass; 2 ms inferences, one a sample: fewer; 1 s: the floor
    fast, slow, crawl = samples_for(s, [1e-5, 2e-3, 1.0], [50, 1, 1])
    assert fast == 50 and MIN_PASSES < slow < 50 and crawl == MIN_PASSES
    assert samples_for(MeasureSettings(samples=5), [1.0], [1]) == [5]  # never more than asked


def test_a_slow_variant_sits_out_passes_without_costing_the_fast_ones_theirs() -> None:
    """One slow variant in a group of fast ones: the fast ones keep every pass, the slow one
    takes part in passes spread over the run, and every sample says which pass it was."""
    from harness.worker.measure import MIN_PASSES, Timing, takes_part, time_interleaved

    ticks = [0]
    cost = [10_000, 10_000, 5_000_000]          # ns per inference: two fast, one 5 ms

    def runner(i: int):
        def run() -> None:
            ticks[0] += cost[i]
        return run

    s = MeasureSettings(samples=50, sample_s=0.0005, warmup_s=0.0, warmup_runs=1,
                        steady_window=1, batch_s=0.0)
    got = time_interleaved([runner(i) for i in range(3)], s, [1e-5, 1e-5, 5e-3],
                           clock=lambda: ticks[0])
    fast, other, slow = got
    assert isinstance(fast, Timing) and isinstance(other, Timing) and isinstance(slow, Timing)
    assert fast.passes == other.passes == list(range(50))
    assert len(slow.samples_s) == len(slow.passes) == MIN_PASSES
    assert slow.passes[0] > 0 and slow.passes[-1] == 49     # spread, not the first ten
    assert [k for k in range(50) if takes_part(k, MIN_PASSES, 50)] == slow.passes
    assert slow.samples_s == [5e-3] * MIN_PASSES and fast.samples_s == [1e-5] * 50


def test_pairs_follow_the_passes_each_variant_took_part_in() -> None:
    """The ratio pairs a slow variant's samples with the baseline's of the same passes,
    not with the baseline's first samples."""
    from harness.analysis.strategies import paired_samples

    base_s = [1.0 + 0.1 * k for k in range(6)]          # drift: every pass slower
    cur_passes = [1, 3, 5]
    cur_s = [2.0 * base_s[k] for k in cur_passes]       # twice the baseline, pass by pass

    def row(strategy: str, samples: list[float], passes: list[int]) -> ResultRow:
        return ResultRow(run_id="t", kind="cell", status="ok", workload="w", strategy=strategy,
                         runtime="r", samples_s=tuple(samples), median_s=float(np.median(samples)),
                         rounds=({"round": 0, "n": len(samples), "group": 2, "group_id": "g",
                                  "passes": passes},))

    base, cur = row("shared", base_s, list(range(6))), row("slow", cur_s, cur_passes)
    pairs = paired_samples(base, cur)
    assert pairs is not None and pairs.sizes == (3,)
    assert list(pairs.base) == [base_s[k] for k in cur_passes]
    (q,) = strategy_ratios([base, cur])
    assert q.paired and q.ratio == pytest.approx(2.0)


def test_a_run_with_isolation_probes_reports_them(regs, quick_settings, tmp_path: Path) -> None:
    """`--isolation`: after the cells, each strategy's probes on each runtime, rows of kind
    `isolation` beside the cells; a resumed run does not probe again."""
    from harness.store.rows import read_rows

    g = _group(regs, strategies=("shared", "per-module"))
    req = RunRequest((WORKLOAD,), ("shared", "per-module"), ("wasmtime",),
                     settings=quick_settings, cell_timeout=60, calibrate=False,
                     interference_s=0, isolation=True)
    execute(list(g.cells), tmp_path, req)
    iso = read_rows(tmp_path, kinds=("isolation",))
    assert sorted((r.strategy, r.metrics["probe"]) for r in iso) == sorted(
        (s, p) for s in ("shared", "per-module")
        for p in ("unbound-read", "overflow-write", "scratch-read"))
    outcome = {(r.strategy, r.metrics["probe"]): r.metrics.get("outcome") for r in iso}
    assert outcome[("shared", "unbound-read")] == "leaked"
    assert outcome[("per-module", "unbound-read")] != "leaked"
    done = Done.from_rows(iso, {})
    assert len(done.isolation) == 6


def test_a_runtime_with_a_workload_subset_runs_every_strategy_on_those_only(regs) -> None:
    """A suite's `runtime_workloads`: the extra engine runs fewer workloads, never fewer
    strategies; the others run all; the subset survives the run record."""
    from harness.run.request import expand
    from harness.run.suite import load_suite

    suite = load_suite("default")
    req = RunRequest(suite.workloads, suite.strategies, suite.runtimes,
                     runtime_workloads=dict(suite.runtime_workloads))
    cells = expand(req, regs)
    by_rt: dict[str, set[str]] = {}
    for c in cells:
        by_rt.setdefault(c.runtime.spec, set()).add(c.workload.spec)
    assert len(by_rt["v8@20"]) == len(suite.runtime_workloads["v8@20"]) == 5
    assert len(by_rt["wasmtime"]) == len(suite.workloads)
    n_strategies = len(suite.strategies)
    assert sum(c.runtime.spec == "v8@20" for c in cells) == 5 * n_strategies
    again, _ = RunRequest.from_record(json.loads(json.dumps(req.record(cells))), regs)
    assert again.runtime_workloads == req.runtime_workloads


class _SplittingWorker(WasmtimeRuntime):
    """The real worker, saying that it ran its variants as two programs one after the
    other (as a linked runtime does past the engine's memory limit): odd ones in the
    second."""

    NAME = "wasmtime"

    def worker_argv(self) -> list[str]:
        code = ("import sys\n"
                "import harness.worker.main as w\n"
                "real = w.HANDLERS['group']\n"
                "def split(*a):\n"
                "    resp = real(*a)\n"
                "    for k, v in enumerate(resp['variants']):\n"
                "        v['subgroup'] = k % 2\n"
                "    return resp\n"
                "w.HANDLERS['group'] = split\n"
                "sys.exit(w.main(sys.argv[1:]))\n")
        return [sys.executable, "-c", code]


def test_variants_of_two_programs_do_not_pair(regs, quick_settings) -> None:
    rows = run_group(_group(regs, _SplittingWorker()), "t", quick_settings, 60, round_index=0)
    assert all(r.status == "ok" for r in rows), [r.reason for r in rows]
    ids = [r.timing["group_id"] for r in rows]
    assert ids[0] == ids[2] != ids[1] and ids[1].startswith(ids[0].split(".")[0])
    paired = {q.strategy: q.paired for q in strategy_ratios([_as_cell(r) for r in rows])}
    assert paired == {"per-module": False, "multi-memory": True}

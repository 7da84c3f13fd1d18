"""`--measure fuel`: wasm operators per inference, counted by wasmtime's fuel in a pass of
its own; deterministic, and absent with the reason where an engine does not count."""

from __future__ import annotations

import dataclasses

import pytest

from harness.cli import main as cli_main
from harness.run.cell import run_cell
from harness.run.request import Cell


def _fuel(regs, settings, workload: str, strategy: str = "shared",
          runtime: str = "wasmtime") -> dict:
    counted = dataclasses.replace(settings, measure=("time", "fuel"))
    row = run_cell(Cell(regs.workloads.create(workload), regs.strategies.create(strategy),
                        regs.runtimes.create(runtime)), "t", counted, 60)
    assert row.status == "ok", row.reason
    return row.metrics


def test_operator_counts_are_deterministic_and_follow_the_work(regs, quick_settings) -> None:
    small = _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8")["fuel"]
    assert isinstance(small, int) and small > 0
    assert _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8")["fuel"] == small  # A/A: identical
    assert _fuel(regs, quick_settings, "gemm:m=16,n=16,k=16")["fuel"] > 4 * small
    # the paged cache's inline tag checks are operators; per-module's copies are the host's
    shared = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10")["fuel"]
    paged = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10",
                  "host-call:mode=paged,host=wasm")["fuel"]
    copied = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10", "per-module")["fuel"]
    assert paged > shared == copied


def test_an_engine_that_does_not_count_says_so(regs, quick_settings) -> None:
    got = _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8", runtime="v8")
    assert got["fuel"] is None and "counts no executed operators" in got["fuel_reason"]


def test_an_unknown_measure_is_refused_with_the_known_ones(tmp_path, capsys) -> None:
    assert cli_main(["run", "--workload", "gemm:m=8,n=8,k=8", "--measure", "time,bogus",
                     "--out", str(tmp_path)]) == 2
    assert "time, fuel, insts" in capsys.readouterr().err


def test_time_is_all_that_is_measured_unless_asked(regs, quick_settings) -> None:
    row = run_cell(Cell(regs.workloads.create("gemm:m=8,n=8,k=8"),
                        regs.strategies.create("shared"), regs.runtimes.create("wasmtime")),
                   "t", quick_settings, 60)
    assert "fuel" not in row.metrics and quick_settings.measure == ("time",)


def test_the_report_puts_counts_beside_time() -> None:
    from harness.store.rows import ResultRow
    from reports.counts import cell_counts, count_fits

    def row(w: str, s: str, fuel: int, insts: int, median: float) -> ResultRow:
        return ResultRow(run_id="r", workload=w, strategy=s, runtime="wasmtime", status="ok",
                         median_s=median, metrics={"fuel": fuel, "insts": insts})
    rows = [row("a", "shared", 1000, 5000, 1e-6), row("a", "per-module", 1000, 6000, 1.2e-6),
            row("b", "shared", 4000, 20000, 4e-6)]
    by = {(c.workload, c.strategy): c for c in cell_counts(rows)}
    assert by[("a", "per-module")].vs_baseline == {"fuel": 1.0, "insts": 1.2}
    fits = {f.measure: f for f in count_fits(list(by.values()))}
    assert fits["insts"].spearman == pytest.approx(1.0) and fits["insts"].cells == 3


def _side(side: str, strategy: str, fuel, status: str = "ok"):
    from harness.store.rows import ResultRow

    metrics = {"fuel": fuel} if fuel is not None else {"fuel": None, "fuel_reason": "no count"}
    return ResultRow(run_id="r", workload="w", strategy=strategy, runtime=f"rt{side}",
                     status=status, side=side, metrics=metrics)


def test_counts_gate_at_a_small_threshold() -> None:
    from harness.analysis.counts import compare_counts

    rows = [_side("A", "shared", 10_000), _side("B", "shared", 10_050),      # +0.5%: same
            _side("A", "per-module", 10_000), _side("B", "per-module", 10_200),  # +2%: more
            _side("A", "host-call", 10_000), _side("B", "host-call", 9_000),     # less
            _side("A", "multi-memory", 10_000), _side("B", "multi-memory", None)]
    got = {c.strategy: c for c in compare_counts(rows, 0.01) if c.measure == "fuel"}
    assert [got[s].verdict for s in ("shared", "per-module", "host-call", "multi-memory")] == \
        ["same", "more", "less", "uncounted"]
    assert got["multi-memory"].reason == "no count"
    assert got["per-module"].ratio == pytest.approx(1.02)


def test_ab_on_counts_passes_an_a_a_run(tmp_path, capsys) -> None:
    """A/A on wasmtime: identical counts, exit 0, whatever time did."""
    code = cli_main(["ab", "--a", "wasmtime", "--b", "wasmtime", "--workload",
                     "gemm:m=8,n=8,k=8", "--strategy", "shared", "--measure", "fuel",
                     "--rounds", "2", "--repeat", "3", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and "counts per inference" in out and "same" in out
    [md] = tmp_path.glob("*/compare.md")   # the PR summary carries the gate's table too
    assert "| gemm:m=8,n=8,k=8 | shared | fuel |" in md.read_text()


def _counting(quick_settings):
    from harness.toolchain import valgrind

    try:
        valgrind.valgrind()
    except Exception as exc:
        pytest.skip(str(exc))
    return dataclasses.replace(quick_settings, measure=("time", "insts"))


#: how far two counts of one cell may differ: the Python worker's are exact to a few
#: instructions; V8's move with its garbage collector and tier-up a little more
AGREE = {"wasmtime": 0.001, "v8": 0.01}


def _counted(regs, settings, cells: list[Cell]) -> list[dict]:
    """Each cell run once, then counted together in one counted worker (what a run's
    counting stage does: `harness.run.insts.count_runtime`)."""
    from harness.run.insts import count_runtime

    rows = [run_cell(c, "t", settings, 240) for c in cells]
    assert all(r.status == "ok" for r in rows), [r.reason for r in rows]
    counts = count_runtime(list(zip(cells, rows, strict=True)), settings.seed)
    assert [(r.kind, r.key, r.settings) for r in counts] == \
        [("counts", r.key, r.settings) for r in rows]
    return [r.metrics for r in counts]


@pytest.mark.parametrize("runtime", sorted(AGREE))
def test_instructions_are_counted_by_callgrind_and_do_not_drift(regs, quick_settings,
                                                                runtime: str) -> None:
    """`--measure insts`: native instructions per inference, from the difference of two
    counted segments under callgrind (the Python worker's client requests; Node's fsync
    marks, main thread, `--predictable`). Cells of two workloads share one counted worker;
    a second worker counts them as the first did (A/A: the same plans in the same order);
    a strategy that copies executes more, and so does a bigger GEMM. On wasmtime the
    second worker also simulates the caches (`--measure cache`): the same instructions,
    and per inference L1 and last-level misses, never more at the last level, and far
    more L1 misses for a GEMM whose operands outgrow the simulated L1."""
    settings = _counting(quick_settings)
    rt = regs.runtimes.create(runtime)

    def cell(w: str, s: str) -> Cell:
        return Cell(regs.workloads.create(w), regs.strategies.create(s), rt)

    cells = [cell("gemm:m=16,n=16,k=16", "shared"), cell("gemm:m=16,n=16,k=16", "per-module"),
             cell("gemm:m=96,n=96,k=96", "shared")]
    cache = runtime == "wasmtime"
    first = _counted(regs, settings, cells)
    second = _counted(regs, dataclasses.replace(settings, measure=("time", "cache"))
                      if cache else settings, cells)
    for a, b in zip(first, second, strict=True):
        assert isinstance(a["insts"], int) and a["insts"] > 0, a
        assert abs(a["insts"] - b["insts"]) <= AGREE[runtime] * a["insts"]
        assert "l1_misses" not in a
        if cache:
            assert 0 <= b["ll_misses"] <= b["l1_misses"], b
    small, copied, big = first
    assert copied["insts"] > small["insts"]
    assert big["insts"] > small["insts"]
    if cache:
        assert second[2]["l1_misses"] > 10 * max(second[0]["l1_misses"], 1)


def test_a_worker_that_cannot_mark_segments_says_so(regs, quick_settings) -> None:
    cell = Cell(regs.workloads.create("gemm:m=16,n=16,k=16"),
                regs.strategies.create("shared"), regs.runtimes.create("wasm2c"))
    settings = _counting(quick_settings)
    row = run_cell(cell, "t", settings, 120, round_index=0)
    if row.status == "unavailable":
        pytest.skip(row.reason)
    assert row.status == "ok" and "insts" not in row.metrics  # counted after the rounds
    [got] = _counted(regs, settings, [cell])
    assert got["insts"] is None
    assert "cannot mark callgrind segments" in got["insts_reason"]


def test_fsync_marked_dumps_are_read_in_order(tmp_path) -> None:
    """Main-thread dumps in number order; per plan a warm-up dump, then pairs of segments
    whose differences' median is the count (a tier-up in one segment does not make it)."""
    from harness.plugins.plan import Plan
    from harness.run.insts import COUNTED_SEGMENTS, SEGMENTS, _from_ordered
    from harness.toolchain.valgrind import read_ordered_dumps

    per = 1 + len(COUNTED_SEGMENTS)
    a, b = SEGMENTS
    # plan v0: clean pairs of 100 and 300 (100 a run), one with a 5000-instruction tier-up
    v0 = [9000, 100, 300, 100, 5300, 100, 300]
    v1 = [800, 50, 250, 50, 250, 50, 250]
    for n, total in enumerate([*v0, *v1, 7], start=1):
        (tmp_path / f"callgrind.out.77.{n}-01").write_text(f"events: Ir\nsummary: {total}\n")
        (tmp_path / f"callgrind.out.77.{n}-02").write_text("events: Ir\nsummary: 999999\n")
    dumps = read_ordered_dumps(tmp_path, "callgrind.out")  # the main thread's only
    assert [d["Ir"] for d in dumps] == [*v0, *v1, 7] and len(v0) == per
    plans = {"v0": Plan.__new__(Plan), "v1": Plan.__new__(Plan)}
    got = _from_ordered(plans, {"v0": "", "v1": ""}, dumps)
    assert got["v0"]["insts"] == round((300 - 100) / (b - a))
    assert got["v1"]["insts"] == round((250 - 50) / (b - a))
    short = _from_ordered(plans, {}, dumps[:per])
    assert short["v1"]["insts"] is None and f"{2 * per} marks" in short["v1"]["insts_reason"]
    five = {"Ir": 5}
    extra = _from_ordered(plans, {}, [*dumps, five, five])  # fsyncs the marks did not make
    assert extra["v0"]["insts"] is None
    assert "l1_misses" not in got["v0"]  # no cache simulation, no misses


def test_simulated_misses_come_from_the_same_segments(tmp_path) -> None:
    """With callgrind's cache simulation each dump has the miss events too (trailing zero
    events left out of its summary): L1 misses = I1mr + D1mr + D1mw and last-level misses
    = ILmr + DLmr + DLmw, per inference by the same pairs of segments."""
    from harness.run.insts import SEGMENTS, _per_inference
    from harness.toolchain.valgrind import read_ordered_dumps

    head = "events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\n"
    a, b = SEGMENTS
    lines = ["900 1 1 1 50 40 1 9", f"{100 + a} 9 9 2 {10 * a} {5 * a} 1 {a}",
             f"{100 + b} 9 9 2 {10 * b} {5 * b} 1 {b}"]
    for n, line in enumerate(lines * 2, start=1):
        (tmp_path / f"callgrind.out.5.{n}-01").write_text(f"{head}summary: {line}\n")
    dumps = read_ordered_dumps(tmp_path, "callgrind.out")
    assert dumps[0] == {"Ir": 900, "Dr": 1, "Dw": 1, "I1mr": 1, "D1mr": 50, "D1mw": 40,
                        "ILmr": 1, "DLmr": 9, "DLmw": 0}
    got = _per_inference([dumps[1], dumps[2], dumps[4], dumps[5]])
    assert got == {"insts": 1, "l1_misses": 15, "ll_misses": 1}


def test_a_a_counts_agreement() -> None:
    from harness.analysis.counts import count_agreement

    a = [_side("", "shared", 1000), _side("", "per-module", 2000)]
    b = [_side("", "shared", 1000), _side("", "per-module", 2002)]
    [fuel] = count_agreement(a, b)
    assert (fuel.measure, fuel.cells, fuel.identical) == ("fuel", 2, 1)
    assert fuel.worst_cv == pytest.approx(2 ** 0.5 * 2 / 4002)


def test_burn_injects_wasm_work_that_counts_see(regs, quick_settings) -> None:
    """`wasmtime:burn=N` adds a loop of N% of an inference's wasm operators: the operator
    count grows by exactly that (to a loop iteration), the plan's own counts do not."""
    settings = dataclasses.replace(quick_settings, measure=("time", "fuel"))
    w, s = regs.workloads.create("gemm:m=16,n=16,k=16"), regs.strategies.create("shared")
    base, burnt = (run_cell(Cell(w, s, regs.runtimes.create(rt)), "t", settings, 120)
                   for rt in ("wasmtime", "wasmtime:burn=10"))
    assert base.status == burnt.status == "ok", (base.reason, burnt.reason)
    assert burnt.metrics["fuel"] == pytest.approx(1.10 * base.metrics["fuel"], rel=1e-3)
    assert burnt.counters == base.counters


def test_burn_is_refused_where_it_cannot_be_injected(regs) -> None:
    from harness.core.errors import SpecError

    with pytest.raises(SpecError, match="driver=linked"):
        regs.runtimes.create("wasmtime:burn=10,driver=linked")
    with pytest.raises(SpecError, match="burn"):
        regs.runtimes.create("v8:burn=10")


def test_a_run_counts_after_its_rounds_one_worker_a_runtime(tmp_path, capsys,
                                                           quick_settings) -> None:
    """`membench run --measure insts`: the cells are timed first; then each runtime's
    cells (and its noop) are counted in one worker, written as `counts` rows after every
    `cell` row; `read_rows` folds them into the cells; a resumed run that lacks a count
    counts that runtime's cells again, in the same worker order, to the same counts (a
    few instructions apart)."""
    import json

    from harness.run.resume import Done
    from harness.store.rows import KINDS, read_rows

    _counting(quick_settings)
    assert cli_main(["run", "--workload", "gemm:m=8,n=8,k=8", "--workload", "gemm:m=8,n=8,k=16",
                     "--strategy", "shared", "--strategy", "per-module", "--runtime",
                     "wasmtime", "--measure", "time,insts", "--repeat", "3",
                     "--sample-time", "0.0005", "--out", str(tmp_path), "--no-report"]) == 0
    assert "counting instructions of 5 cells on wasmtime" in capsys.readouterr().err
    (run_dir,) = list(tmp_path.iterdir())
    kinds = [json.loads(line)["kind"] for line in
             (run_dir / "results.jsonl").read_text().splitlines()]
    assert kinds.count("counts") == 5 and kinds.index("counts") > max(
        i for i, k in enumerate(kinds) if k == "cell")
    cells = read_rows(run_dir)
    assert len(cells) == 4 and all(isinstance(r.metrics["insts"], int) for r in cells)
    every = read_rows(run_dir, kinds=KINDS)
    assert all("insts" not in r.metrics for r in every if r.kind == "cell")
    assert len(Done.from_rows(every, {}).counted) == 5
    # a resumed run that lost one count
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    (run_dir / "results.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert cli_main(["run", "--resume", str(run_dir), "--no-report"]) == 0
    assert "counting instructions of 5 cells on wasmtime" in capsys.readouterr().err
    assert cli_main(["run", "--resume", str(run_dir), "--no-report"]) == 0
    assert "counting instructions" not in capsys.readouterr().err  # nothing left to count
    for again, first in zip(read_rows(run_dir), cells, strict=True):  # within a few
        assert again.metrics["insts"] == pytest.approx(first.metrics["insts"], rel=AGREE["wasmtime"])

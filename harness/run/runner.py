"""Running a set of cells: expand the cross product, probe runtimes, run the cells in
interleaved rounds (each round of each cell in its own worker), append each row durably,
keep the run manifest current.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import itertools
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.core.protocol import _default, write_json_atomic
from harness.plugins.registry import RUNTIMES, STRATEGIES, WORKLOADS, Registry
from harness.plugins.strategy import Strategy
from harness.plugins.workload import Workload
from harness.probes.estimate import CallCosts, measure_call_costs
from harness.probes.fingerprint import command_line, fingerprint, noise_warnings
from harness.probes.interference import WARN_FRACTION as INTERFERENCE_WARN
from harness.probes.interference import probe_interference
from harness.probes.overhead import measure_overhead
from harness.probes.probe import ProbeResult, probe_runtime
from harness.results.rows import MANIFEST, RESULTS, ResultRow, ResultsWriter, read_manifest
from harness.run.calibration import OVERHEAD_FACTOR, baseline_cell, noop_cell, over_baseline
from harness.run.cell import Cell, run_cell
from harness.run.external import supports_lockstep
from harness.run.interrupt import GracefulStop
from harness.run.pair import pair_cpu, run_pair
from harness.run.resume import REQUEST, Done, request_record
from harness.run.rounds import cell_orders, combine_rounds
from harness.runtimes.base import Runtime
from harness.worker.measure import MeasureSettings


@dataclass(frozen=True)
class Registries:
    """The three plugin registries, passed explicitly (no module-level state)."""

    workloads: Registry[Workload]
    strategies: Registry[Strategy]
    runtimes: Registry[Runtime]

    @classmethod
    def from_entry_points(cls) -> Registries:
        return cls(Registry(WORKLOADS, "workload"), Registry(STRATEGIES, "strategy"),
                   Registry(RUNTIMES, "runtime"))


@dataclass(frozen=True)
class RunRequest:
    workloads: tuple[str, ...]
    strategies: tuple[str, ...]
    runtimes: tuple[str, ...]
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    cell_timeout: float = 120.0
    suite: str | None = None
    max_memory: int | None = None
    pin: tuple[int, ...] = ()          # CPUs the workers are pinned to (empty: not pinned)
    calibrate: bool = True             # run the baseline and noop calibration cells
    #: seconds of the host-interference probe at the start and at the end of a run (0: none)
    interference_s: float = 0.5
    worker_memory_limit: int | None = None  # cap on each worker's data segment (bytes)
    #: seconds a cell may cost by its plan-based estimate; over it the cell is `skipped`
    cell_budget: float | None = None
    #: run the A and B cells of an A/B pair together, samples alternating (harness.worker.lockstep)
    lockstep: bool = False
    #: this run is one side of another checkout's lockstep pair: its gate's pipe ends
    lockstep_fds: tuple[int, int] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def expand(req: RunRequest, regs: Registries) -> list[Cell]:
    """Parse every spec (failing fast on any bad one) and form the cross product."""
    if not req.workloads:
        raise ResultsError("nothing to run: no workloads given (use --suite or --workload)")
    workloads = [regs.workloads.create(s) for s in req.workloads]
    strategies = [regs.strategies.create(s) for s in req.strategies]
    runtimes = [regs.runtimes.create(s) for s in req.runtimes]
    for w in workloads:  # impossible shapes are refused before any work
        w.check_limits(req.max_memory)
        w.tensors  # noqa: B018 - building tensors validates shapes
    return [Cell(w, s, r) for w, s, r in itertools.product(workloads, strategies, runtimes)]


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def prepare_run_dir(out: Path, run_id: str) -> Path:
    if Path(out).exists() and not Path(out).is_dir():
        raise ResultsError(f"--out {out} is a file, not a directory")
    run_dir = Path(out) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ResultsError(f"run directory {run_dir} already exists") from None
    except OSError as exc:
        raise ResultsError(f"cannot create {run_dir}: {exc.strerror}") from None
    return run_dir


ProgressFn = Callable[[int, int, Cell, ResultRow | None], None]

def _annotate(row: ResultRow, noop: ResultRow | None, baseline: ResultRow | None) -> ResultRow:
    """Add the overhead flag and the memory-over-baseline figures to a final row."""
    changes: dict[str, Any] = {}
    if baseline is not None and baseline.status == "ok" and row.memory:
        changes["memory"] = {**row.memory, **over_baseline(row.memory, baseline.memory)}
    if noop is not None and noop.status == "ok" and noop.median_s and row.kind == "cell":
        changes["overhead_s"] = noop.median_s
        if row.median_s is not None:
            changes["overhead_dominated"] = row.median_s < OVERHEAD_FACTOR * noop.median_s
    return dataclasses.replace(row, **changes) if changes else row


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal settings dicts, as they compare after a JSON round trip."""
    return json.loads(json.dumps(a, default=_default)) == json.loads(json.dumps(b, default=_default))


def execute(cells: Sequence[Cell], run_dir: Path, req: RunRequest,
            progress: ProgressFn | None = None, done: Done | None = None) -> list[ResultRow]:
    """Run every cell for `settings.rounds` interleaved rounds into `run_dir`.

    Per runtime, first an empty-plan `baseline` worker (memory baseline), then the
    `noop` calibration cell joins the cells. Each round runs every unfinished cell once,
    a fresh worker each, in an order shuffled per round from `order_seed` (recorded in
    `run.json`). Each round's row is appended and fsync'd before the next worker starts;
    a cell's final row follows its last round (or its first failing round). Returns the
    final rows: baselines, noops, then cells in the given order.

    `done` (from `harness.run.resume`) is what an earlier session of this run already wrote:
    those baselines, rounds and final rows are kept and not run again. The first Ctrl-C
    stops after the current worker, the second at once; either way the manifest says
    `interrupted` and KeyboardInterrupt propagates.
    """
    # the results file is locked first: a run another process is writing is left untouched
    with ResultsWriter(run_dir / RESULTS) as writer, GracefulStop() as stop:
        try:
            return _execute(cells, run_dir, req, progress, done, stop, writer)
        except KeyboardInterrupt:  # also while probing, before the cells' own handler
            with contextlib.suppress(ResultsError):
                manifest = read_manifest(run_dir)
                if manifest.get("status") == "running":
                    write_json_atomic(run_dir / MANIFEST, {**manifest, "status": "interrupted"})
            raise


def lockstep_partners(jobs: Sequence[Cell]) -> dict[int, int]:
    """A/B pairs that can run in lockstep, both ways: job index -> its partner's index.
    Cells run by another checkout's membench (`repo`) pair when that checkout has
    lockstep (`external.supports_lockstep`)."""
    sides: dict[tuple[str, str], dict[str, int]] = {}
    for j, c in enumerate(jobs):
        if c.side and (c.repo is None or supports_lockstep(c.repo)):
            sides.setdefault((c.workload.spec, c.strategy.spec), {})[c.side] = j
    out: dict[int, int] = {}
    for pair in sides.values():
        if set(pair) == {"A", "B"}:
            out[pair["A"]], out[pair["B"]] = pair["B"], pair["A"]
    return out


def _drop_half_pairs(partner: dict[int, int], final: dict[int, ResultRow],
                     rounds_of: list[list[ResultRow]], positions: list[list[int]],
                     have: list[set[int]]) -> None:
    """A resumed lockstep run in which a pair kept a round on one side only (the run died
    between the pair's two rows) measures that round again on both sides, paired: kept
    alone it would be compared unpaired."""
    for j, mate in partner.items():
        if j in final or mate in final:
            continue
        for rnd in have[j] - have[mate]:
            i = next(i for i, r in enumerate(rounds_of[j]) if r.round == rnd)
            del rounds_of[j][i], positions[j][i]
            have[j].discard(rnd)


def worker_pin(req: RunRequest) -> tuple[int, ...]:
    """The CPUs every worker of the run is pinned to: `--pin`; in a lockstep run without it,
    the CPU its pairs share (`pair_cpu`), so the noop, baseline and unpaired cells are
    measured where the pairs are; otherwise none."""
    if req.pin or not req.lockstep:
        return req.pin
    return (pair_cpu(),)


def _interference(req: RunRequest, cpus: Sequence[int], warnings: list[str],
                  when: str) -> dict[str, Any]:
    """Probe host interference on the workers' CPUs; a warning when it is high."""
    found = probe_interference(req.interference_s, cpus=cpus)
    if found.slowed_fraction > INTERFERENCE_WARN:
        warnings.append(f"at the {when} of the run, {found.describe()}")
    return found.to_dict()


def _execute(cells: Sequence[Cell], run_dir: Path, req: RunRequest, progress: ProgressFn | None,
             done: Done | None, stop: GracefulStop, writer: ResultsWriter) -> list[ResultRow]:
    run_id = run_dir.name
    order_seed = req.settings.order_seed
    if order_seed is None:
        order_seed = secrets.randbits(32)
    settings = dataclasses.replace(req.settings, order_seed=order_seed)
    pin = worker_pin(req)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "created": _now(),
        "command": command_line(),
        "suite": req.suite,
        "settings": settings.to_dict(),
        "cell_timeout": req.cell_timeout,
        "cells_planned": len(cells),
        "pin": list(pin),
        "fingerprint": fingerprint(),
        "runtimes": {},
        "status": "running",
        **req.extra,
        REQUEST: request_record(dataclasses.replace(req, settings=settings), list(cells)),
    }
    if done is not None:
        manifest["created"] = done.manifest.get("created", manifest["created"])
        manifest["resumed"] = [*done.manifest.get("resumed", []), _now()]
    fp_warnings = noise_warnings(manifest["fingerprint"], pinned=bool(pin))
    if req.interference_s > 0:
        manifest["host_interference"] = {"start": _interference(req, pin, fp_warnings, "start")}
    manifest["warnings"] = fp_warnings
    write_json_atomic(run_dir / MANIFEST, manifest)
    probes: dict[str, ProbeResult] = {}
    runtimes = {c.runtime.spec: c.runtime for c in cells}
    for rt in runtimes.values():
        probes[rt.spec] = probe_runtime(rt, timeout_s=min(req.cell_timeout, 120.0))
    manifest["runtimes"] = {k: v.to_dict() for k, v in probes.items()}
    for spec, rt in runtimes.items():
        # the embedding's own cost (one call into wasm, one host call out), shown next to
        # results so a strategy's cost can be told from the embedding's
        manifest["runtimes"][spec]["overhead"] = (
            measure_overhead(rt, timeout_s=min(req.cell_timeout, 120.0), pin=pin).to_dict()
            if probes[spec].status == "ok" and probes[spec].has("host-func-import")
            else {"status": "unavailable", "message": probes[spec].message or
                  "no host-function imports"})
    costs: dict[str, CallCosts] = {}
    if req.cell_budget is not None:
        for spec, rt in {c.runtime.spec: c.runtime for c in cells}.items():
            if probes[spec].status == "ok":
                measured = measure_call_costs(rt, timeout_s=min(req.cell_timeout, 120.0),
                                              pin=pin)
                if isinstance(measured, CallCosts):
                    costs[spec] = measured
                manifest["runtimes"][spec]["call_costs"] = (
                    measured.to_dict() if isinstance(measured, CallCosts) else measured)
    write_json_atomic(run_dir / MANIFEST, manifest)
    noops = [noop_cell(rt) for rt in runtimes.values()] if req.calibrate else []
    jobs: list[Cell] = [*noops, *cells]
    # an A/B run keeps each A cell next to its B cell (see `cell_orders`)
    blocks = ([(c.workload.spec, c.strategy.spec) if c.side else j for j, c in enumerate(jobs)]
              if any(c.side for c in jobs) else None)
    orders = cell_orders(len(jobs), settings.rounds, order_seed, blocks)
    manifest["schedule"] = {"order_seed": order_seed, "rounds": settings.rounds,
                            "cells": [str(c) for c in jobs], "orders": orders}
    write_json_atomic(run_dir / MANIFEST, manifest)
    quick = dataclasses.replace(settings, samples=1, warmup_s=0.0, warmup_max_s=0.01,
                                sample_s=0.001)
    baselines: dict[str, ResultRow] = {}
    rounds_of: list[list[ResultRow]] = [[] for _ in jobs]
    positions: list[list[int]] = [[] for _ in jobs]
    have: list[set[int]] = [set() for _ in jobs]  # rounds each job already has
    final: dict[int, ResultRow] = {}
    if done is not None:  # keep what an earlier session finished with these settings
        index = {job.run_key: j for j, job in enumerate(jobs)}
        baselines = {k: r for k, r in done.baselines.items()
                     if k in runtimes and _same(r.settings, quick.to_dict())}
        final = {index[k]: r for k, r in done.finals.items()
                 if k in index and _same(r.settings, settings.to_dict())}
        for (k, rnd), r in sorted(done.rounds.items(), key=lambda kv: kv[0][1]):
            j = index.get(k)
            if j is not None and j not in final and rnd < settings.rounds \
                    and _same(r.settings, settings.to_dict()):
                rounds_of[j].append(r)
                positions[j].append(orders[rnd].index(j))
                have[j].add(rnd)
    partner = lockstep_partners(jobs) if req.lockstep else {}
    _drop_half_pairs(partner, final, rounds_of, positions, have)
    total = len(jobs) * settings.rounds
    done_count = sum(settings.rounds if j in final else len(have[j]) for j in range(len(jobs)))
    kind_of = ["noop" if j < len(noops) else "cell" for j in range(len(jobs))]
    limit = req.worker_memory_limit
    try:
        for j, rows_j in enumerate(rounds_of):  # a failed round whose final row is missing
            if j not in final and any(r.status != "ok" for r in rows_j):
                final[j] = combine_rounds(rows_j, positions=positions[j], kind=kind_of[j])
                writer.append(final[j])
        if req.calibrate:
            for rt in runtimes.values():
                if rt.spec in baselines:
                    continue
                stop.check()
                row = run_cell(baseline_cell(rt), run_id, quick, req.cell_timeout,
                               probes[rt.spec], pin=pin, memory_limit=limit)
                baselines[rt.spec] = dataclasses.replace(row, kind="baseline")
                writer.append(baselines[rt.spec])

        def record(j: int, rnd: int, pos: int, row: ResultRow) -> None:
            nonlocal done_count
            writer.append(row)
            rounds_of[j].append(row)
            positions[j].append(pos)
            done_count += 1
            if row.status != "ok":
                done_count += settings.rounds - 1 - rnd  # it is not run again
                final[j] = combine_rounds(rounds_of[j], positions=positions[j], kind=kind_of[j])
                writer.append(final[j])
            if progress:
                progress(done_count, total, jobs[j], row)

        for rnd, order in enumerate(orders):
            for pos, j in enumerate(order):
                if j in final or rnd in have[j]:
                    continue
                stop.check()
                cell = jobs[j]
                if progress:
                    progress(done_count, total, cell, None)
                mate = partner.get(j)
                if mate is not None and mate not in final and rnd not in have[mate]:
                    row_j, row_mate = run_pair(
                        cell, jobs[mate], run_id, settings, req.cell_timeout,
                        (probes[cell.runtime.spec], probes[jobs[mate].runtime.spec]),
                        round_index=rnd, pin=pin, memory_limit=limit)
                    record(j, rnd, pos, row_j)
                    record(mate, rnd, order.index(mate), row_mate)
                    have[mate].add(rnd)
                    continue
                record(j, rnd, pos, run_cell(
                    cell, run_id, settings, req.cell_timeout, probes[cell.runtime.spec],
                    round_index=rnd, pin=pin, memory_limit=limit,
                    costs=costs.get(cell.runtime.spec), budget_s=req.cell_budget,
                    lockstep_fds=req.lockstep_fds if kind_of[j] == "cell" else None))
            manifest["rounds_done"] = rnd + 1
            write_json_atomic(run_dir / MANIFEST, manifest)
        noop_rows = {jobs[j].runtime.spec: r for j, r in final.items() if kind_of[j] == "noop"}
        for j, cell in enumerate(jobs):
            if j in final:
                continue
            kind = kind_of[j]
            row = combine_rounds(rounds_of[j], kind=kind, positions=positions[j])
            if kind == "noop":
                noop_rows[cell.runtime.spec] = row
            rt_spec = cell.runtime.spec
            final[j] = _annotate(row, noop_rows.get(rt_spec), baselines.get(rt_spec))
            writer.append(final[j])
        if req.interference_s > 0:
            manifest.setdefault("host_interference", {})["end"] = _interference(
                req, pin, manifest["warnings"], "end")
        manifest["status"] = "complete"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    finally:
        manifest["cells_done"] = sum(1 for j in final if j >= len(noops))
        write_json_atomic(run_dir / MANIFEST, manifest)
    ordered = [final[j] for j in range(len(jobs)) if j in final]
    return [*baselines.values(), *ordered]

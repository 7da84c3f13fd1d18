"""One cell = workload × strategy × runtime: plan, check support, run the worker, verify.

Every way a cell can end becomes a `ResultRow` with a status; nothing here raises for a
cell's own failure, so one bad cell never ends a suite.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import ToolUnavailable, Unsupported
from harness.core.protocol import save_tensors
from harness.plugins.plan import Plan
from harness.plugins.requests import output_tensor, request_data, request_reference
from harness.plugins.verify import compare
from harness.plugins.workload import Tolerance
from harness.probes.estimate import CallCosts, over_budget
from harness.probes.probe import ProbeResult
from harness.run.external import run_external_cell
from harness.run.request import Cell
from harness.store.rows import ResultRow
from harness.worker.launch import WorkerOutcome, pinned, run_worker
from harness.worker.lockstep import gated
from harness.worker.measure import MeasureSettings

#: plan predictions checked against the worker's memory report rather than its counters;
#: a worker that does not report one (a runtime that cannot see its memories) skips the check
CENSUS = ("memories", "linear_bytes")


@dataclass
class PreparedCell:
    """A cell round ready for its worker: request written to a temporary directory."""

    cell: Cell
    base: dict[str, Any]
    t0: float
    workdir: Path
    request: dict[str, Any]
    reference: dict[str, np.ndarray]
    tolerance: Tolerance
    data: dict[str, np.ndarray]

    def row(self, status: str, reason: str = "", **extra: Any) -> ResultRow:
        return ResultRow(status=status, reason=reason, wall_s=time.perf_counter() - self.t0,
                         **self.base, **extra)


def run_cell(cell: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
             probe: ProbeResult | None = None, workdir: Path | None = None,
             memory_limit: int | None = None, round_index: int | None = None,
             pin: Sequence[int] = (), costs: CallCosts | None = None,
             budget_s: float | None = None,
             lockstep_fds: tuple[int, int] | None = None) -> ResultRow:
    """Run one round of `cell` in a fresh worker (killed after `timeout_s`; data segment
    capped at `memory_limit` bytes when given) and verify its outputs against NumPy.
    The row's `kind` is "round" when `round_index` is given (the runner folds rounds
    into the cell row). With `costs` and `budget_s`, a cell whose plan-based estimate
    exceeds the budget is `skipped` with the estimate instead of being run. With
    `lockstep_fds` (inherited pipe ends) the worker is one side of another process's
    lockstep pair (`harness.worker.lockstep`)."""
    if cell.repo is not None:
        return run_external_cell(cell, run_id, settings, timeout_s, round_index, pin)
    with contextlib.ExitStack() as stack:
        p = prepare_cell(cell, run_id, settings, probe, workdir, round_index, pin, costs,
                         budget_s, stack)
        if isinstance(p, ResultRow):
            return p
        request = p.request if lockstep_fds is None else gated(p.request, lockstep_fds)
        return finish_cell(p, run_worker(
            cell.runtime, request, p.workdir, timeout_s, memory_limit=memory_limit,
            pass_fds=lockstep_fds or ()))


@dataclass
class PlannedCell:
    """A cell round whose plan is made and checked against the runtime and the budget."""

    cell: Cell
    plan: Plan
    base: dict[str, Any]
    t0: float

    def row(self, status: str, reason: str = "", **extra: Any) -> ResultRow:
        return ResultRow(status=status, reason=reason, wall_s=time.perf_counter() - self.t0,
                         **self.base, **extra)


def plan_cell(cell: Cell, run_id: str, settings: MeasureSettings, probe: ProbeResult | None,
              round_index: int | None, costs: CallCosts | None,
              budget_s: float | None) -> ResultRow | PlannedCell:
    """Plan the cell, or the row that says why it cannot run: its runtime is unavailable,
    the strategy cannot express the workload, the runtime lacks a capability the plan
    needs, or the plan's estimated cost is over the cell budget."""
    t0 = time.perf_counter()
    w, s, rt = cell.workload, cell.strategy, cell.runtime
    base: dict[str, Any] = {"run_id": run_id, "workload": w.spec, "strategy": s.spec,
                            "runtime": rt.spec, "side": cell.side, "flops": w.flops(),
                            "compulsory_bytes": w.compulsory_bytes(),
                            "settings": settings.to_dict()}
    if round_index is not None:
        base.update(kind="round", round=round_index)

    def row(status: str, reason: str = "", **extra: Any) -> ResultRow:
        return ResultRow(status=status, reason=reason, wall_s=time.perf_counter() - t0,
                         **base, **extra)

    if probe is not None and probe.status != "ok":
        return row("unavailable", probe.message)
    try:
        plan = s.plan(w)
    except ToolUnavailable as exc:
        return row("unavailable", str(exc))
    except Unsupported as exc:
        return row("unsupported", str(exc))
    base["expected_counts"] = plan.expected_counts()
    if probe is not None:
        missing = probe.missing(plan.requires)
        if missing:
            why = "; ".join(f"{c} ({probe.capabilities.get(c, {}).get('detail', 'absent')})"
                            for c in missing)
            return row("unsupported", f"{rt.spec} lacks {', '.join(missing)}: {why}")
    refusal = rt.refuses(plan)
    if refusal is not None:
        return row("unsupported", refusal)
    if costs is not None and budget_s is not None:
        est = over_budget(plan, costs, settings, budget_s)
        if est is not None:
            return row("skipped", f"estimated {est['estimate_s']:.1f} s > cell budget "
                                  f"{budget_s:g} s ({est['host_calls']} host calls and "
                                  f"{plan.calls_per_run()} dispatches per inference)",
                       metrics={"estimate": est})
    return PlannedCell(cell, plan, base, t0)


def prepare_cell(cell: Cell, run_id: str, settings: MeasureSettings,
                 probe: ProbeResult | None, workdir: Path | None, round_index: int | None,
                 pin: Sequence[int], costs: CallCosts | None, budget_s: float | None,
                 stack: contextlib.ExitStack) -> ResultRow | PreparedCell:
    """Plan the cell and write its worker request, or the row that says why it cannot run."""
    planned = plan_cell(cell, run_id, settings, probe, round_index, costs, budget_s)
    if isinstance(planned, ResultRow):
        return planned
    w, rt = cell.workload, cell.runtime
    data = request_data(w, settings.seed, planned.plan.requests)
    reference = request_reference(w, data, planned.plan.requests)
    tol = w.tolerance()
    planned.base["tolerance"] = {"rtol": tol.rtol, "atol": tol.atol}
    d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="membench-cell-",
                                                             dir=workdir)))
    plan_path = d / "plan.json"
    plan_path.write_text(planned.plan.to_json(), encoding="utf-8")
    request = pinned({"kind": "cell", "runtime": rt.spec, "plan_path": str(plan_path),
                      "inputs": save_tensors(d, data), "settings": settings.to_dict()}, pin)
    return PreparedCell(cell, planned.base, planned.t0, d, request, reference, tol, data)


def _counts(p: PreparedCell, resp: dict[str, Any]) -> dict[str, Any]:
    """What the worker counted per inference; where a count was asked for and its worker
    does not count (a JavaScript or standalone worker), that it is missing and why."""
    if "fuel" not in p.base.get("settings", {}).get("measure", ()) or "counts" in resp:
        return dict(resp.get("counts", {}))
    return {"fuel": None, "fuel_reason": f"{p.cell.runtime.spec}'s worker counts no "
                                         "executed operators"}


def finish_cell(p: PreparedCell, outcome: WorkerOutcome) -> ResultRow:
    """The row of a finished worker: outputs verified, counters checked against the plan."""
    w, base, row = p.cell.workload, p.base, p.row
    resp = outcome.response or {}
    if resp.get("runtime"):
        base["runtime_info"] = resp["runtime"]
    if outcome.status != "ok":
        return row(outcome.status, outcome.message)
    outputs = {}
    for name in p.reference:  # every request's outputs
        t = w.tensor(output_tensor(name))
        path = resp.get("outputs", {}).get(name)
        if path is None:
            return row("crashed", f"worker returned no output {name}")
        outputs[name] = np.fromfile(path, dtype=np.dtype(t.dtype).newbyteorder("<")) \
            .reshape(t.shape)
    counters = {k: int(v) for k, v in resp.get("counters", {}).items()}
    measured = {"phases": resp.get("phases", {}), "memory": resp.get("memory", {}),
                "counters": counters,
                "bytes_copied_per_run": counters.get("bytes_copied"),
                "host_calls_per_run": counters.get("host_calls"),
                "calls_per_run": counters.get("calls")}
    verdict = compare(outputs, p.reference, p.tolerance)
    if not verdict.ok:
        return row("invalid", verdict.message, max_abs_err=verdict.max_abs_err,
                   err_index=verdict.index, err_tensor=verdict.tensor, **measured)
    expected_counts = base["expected_counts"]
    observed: dict[str, int | None] = dict(counters)
    memory = resp.get("memory", {})
    for k in CENSUS:  # not per-inference counters: what the loaded plan holds
        if k in memory:
            observed[k] = int(memory[k])
    if "grows" in resp.get("phases", {}):  # set-up's and the first inference's
        observed["grows"] = int(resp["phases"]["grows"])
    mismatched = {k: (v, observed.get(k)) for k, v in expected_counts.items()
                  if observed.get(k) != v and (k not in CENSUS or k in memory)}
    if mismatched:
        text = ", ".join(f"{k}: plan {v} vs worker {got}" for k, (v, got) in mismatched.items())
        return row("invalid", f"worker did not do what the plan says ({text})",
                   max_abs_err=verdict.max_abs_err, **measured)
    timing = dict(resp.get("timing", {}))
    samples = tuple(float(x) for x in timing.pop("samples_s", ()))
    if resp.get("affinity") is not None:
        timing["affinity"] = resp["affinity"]
    if resp.get("agents") is not None:  # a plan of agents: their CPUs and hand-off cost
        timing["agents"] = resp["agents"]
    return row("ok", "", median_s=statistics.median(samples) if samples else None,
               samples_s=samples, inner=int(timing.get("inner", 0)), timing=timing,
               breakdown=resp.get("breakdown", {}),
               max_abs_err=verdict.max_abs_err,
               # counts per inference (--measure fuel): wasm operators, or why none
               metrics={**w.metrics(p.data, outputs), **_counts(p, resp)}, **measured)

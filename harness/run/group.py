"""One round of a comparison group, parent side: plan every variant, run one worker for
all of them, verify each variant's outputs against NumPy and check its counts.

A variant that cannot run (unsupported, over budget, its runtime unavailable) gets its
row without a worker. A worker that dies (crash, timeout, out of memory) is blamed on the
variant it was running (`harness.worker.group.Blame`): that variant gets the worker's
status and the others are measured again without it, so one variant's fault never loses
the others' results. Every row of one worker carries `timing.group` (how many variants
shared the process): `harness.analysis.paired` pairs their samples by index.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.protocol import save_tensors
from harness.plugins.workload import Tolerance
from harness.probes.estimate import CallCosts
from harness.probes.probe import ProbeResult
from harness.results.rows import ResultRow
from harness.run.cell import PlannedCell, PreparedCell, finish_cell, plan_cell
from harness.run.request import Group
from harness.worker.group import read_blame
from harness.worker.launch import WorkerOutcome, pinned, run_worker
from harness.worker.measure import MeasureSettings


def run_group(group: Group, run_id: str, settings: MeasureSettings, timeout_s: float,
              probe: ProbeResult | None = None, round_index: int | None = None,
              pin: Sequence[int] = (), memory_limit: int | None = None,
              costs: CallCosts | None = None, budget_s: float | None = None,
              workdir: Path | None = None) -> list[ResultRow]:
    """One round of every cell of `group`: one row per cell, in the group's order. The
    worker may take `timeout_s` per variant it measures."""
    rows: dict[int, ResultRow] = {}
    planned: dict[int, PlannedCell] = {}
    for i, cell in enumerate(group.cells):
        got = plan_cell(cell, run_id, settings, probe, round_index, costs, budget_s)
        if isinstance(got, ResultRow):
            rows[i] = got
        else:
            planned[i] = got
    if planned:
        w = group.workload
        data = w.generate(settings.seed)
        reference, tol = w.reference(data), w.tolerance()
        for p in planned.values():
            p.base["tolerance"] = {"rtol": tol.rtol, "atol": tol.atol}
        pending = sorted(planned)
        while pending:
            with tempfile.TemporaryDirectory(prefix="membench-group-", dir=workdir) as tmp:
                pending = _one_worker(group, pending, planned, rows, data, reference, tol,
                                      settings, timeout_s, pin, memory_limit, Path(tmp))
    return [rows[i] for i in range(len(group.cells))]


def group_cost(resp: dict[str, Any], wall_s: float) -> dict[str, float]:
    """Where one group worker's time went: `fixed_s` is everything but warm-up and samples
    (process start and imports, compile, instantiate, set-up, checks)."""
    g = resp.get("group", {})
    measure = float(g.get("measure_s", 0.0))
    return {"wall_s": wall_s, "measure_s": measure, "load_s": float(g.get("load_s", 0.0)),
            "start_s": max(0.0, wall_s - float(resp.get("worker_s", wall_s))),
            "fixed_s": max(0.0, wall_s - measure)}


def _one_worker(group: Group, pending: list[int], planned: dict[int, PlannedCell],
                rows: dict[int, ResultRow], data: dict[str, np.ndarray],
                reference: dict[str, np.ndarray], tol: Tolerance,
                settings: MeasureSettings, timeout_s: float, pin: Sequence[int],
                memory_limit: int | None, d: Path) -> list[int]:
    """Run the pending variants in one worker; fill `rows`; return the variants still to
    measure (the survivors of a worker that died)."""
    variants = []
    for i in pending:
        path = d / f"v{i}.plan.json"
        path.write_text(planned[i].plan.to_json(), encoding="utf-8")
        variants.append({"strategy": planned[i].cell.strategy.spec, "plan_path": str(path)})
    blame = d / "blame"
    request = pinned({"kind": "group", "runtime": group.runtime.spec, "variants": variants,
                      "inputs": save_tensors(d, data), "settings": settings.to_dict(),
                      "blame_path": str(blame)}, pin)
    outcome = run_worker(group.runtime, request, d, timeout_s * len(pending),
                         memory_limit=memory_limit)
    resp = outcome.response or {}

    def prepared(i: int) -> PreparedCell:
        p = planned[i]
        return PreparedCell(p.cell, p.base, p.t0, d, request, reference, tol, data)

    if outcome.status == "ok" and isinstance(resp.get("variants"), list) \
            and len(resp["variants"]) == len(pending):
        for i, v in zip(pending, resp["variants"], strict=True):
            v = dict(v or {"status": "crashed", "message": "the worker returned nothing"})
            v["runtime"], v["affinity"] = resp.get("runtime"), resp.get("affinity")
            if isinstance(v.get("timing"), dict):
                v["timing"] = {**v["timing"], "group": len(pending),
                               "group_cost": group_cost(resp, outcome.wall_s)}
            rows[i] = finish_cell(prepared(i), WorkerOutcome(
                str(v.get("status", "crashed")), str(v.get("message", "")), v,
                outcome.wall_s))
        return []
    culprit = read_blame(blame)
    if outcome.status == "ok":  # a worker that answered, but not for every variant
        outcome = WorkerOutcome("crashed", outcome.message or "the worker's answer lists "
                                "no variants", resp, outcome.wall_s)
    if culprit is None or culprit >= len(pending) or len(pending) == 1:
        for i in pending:
            rows[i] = finish_cell(prepared(i), outcome)
        return []
    i = pending[culprit]
    rows[i] = finish_cell(prepared(i), WorkerOutcome(
        outcome.status, f"{outcome.message} (the worker of its comparison group died while "
        f"this variant ran; the other {len(pending) - 1} were measured again without it)",
        None, outcome.wall_s))
    return [j for j in pending if j != i]

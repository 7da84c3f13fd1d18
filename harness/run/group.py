"""One round of a comparison group, parent side: plan every variant, run one worker for
all of them, verify each variant's outputs against NumPy and check its counts.

A variant that cannot run (unsupported, over budget, its runtime unavailable) gets its
row without a worker. A worker that dies (crash, timeout, out of memory) is blamed on the
variant it was running (`harness.worker.group.Blame`): the others are measured again
without it, and the suspect is then run alone, so it gets a failure row only from a
worker of its own. When the dead worker named no one, every variant runs alone. One
variant's fault never loses the others' results.

The variants load in an order rotated by the round, so no strategy is always the first
to pay for the engine's set-up (its compile and first-inference phases). Every row of one
worker carries `timing.group` (how many variants shared the process) and `timing.group_id`
(which worker): `harness.analysis.strategies.paired_samples` pairs samples only within one.
`memory_limit` caps that one worker, all its variants together.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.protocol import save_tensors
from harness.plugins.requests import output_names, request_data, request_reference
from harness.plugins.workload import Tolerance
from harness.probes.estimate import CallCosts
from harness.probes.probe import ProbeResult
from harness.run.cell import PlannedCell, PreparedCell, finish_cell, plan_cell
from harness.run.request import Group, worker_runtime
from harness.store.rows import ResultRow
from harness.worker.group import read_blame
from harness.worker.launch import WorkerOutcome, pinned, run_worker
from harness.worker.measure import MeasureSettings, rotation


def run_group(group: Group, run_id: str, settings: MeasureSettings, timeout_s: float,
              probe: ProbeResult | Mapping[str, ProbeResult | None] | None = None,
              round_index: int | None = None,
              pin: Sequence[int] = (), memory_limit: int | None = None,
              costs: CallCosts | Mapping[str, CallCosts] | None = None,
              budget_s: float | None = None,
              workdir: Path | None = None) -> list[ResultRow]:
    """One round of every cell of `group`: one row per cell, in the group's order. The
    worker may take `timeout_s` per variant it measures. `probe` and `costs` may be given
    per runtime spec (a group of two drivers of one engine holds two runtimes)."""
    rows: dict[int, ResultRow] = {}
    planned: dict[int, PlannedCell] = {}
    for i, cell in enumerate(group.cells):
        spec = cell.runtime.spec
        got = plan_cell(cell, run_id, settings,
                        probe.get(spec) if isinstance(probe, Mapping) else probe, round_index,
                        costs.get(spec) if isinstance(costs, Mapping) else costs, budget_s)
        if isinstance(got, ResultRow):
            rows[i] = got
        else:
            planned[i] = got
    if planned:
        w = group.workload
        requests = max(p.plan.requests for p in planned.values())
        data = request_data(w, settings.seed, requests)
        ctx = _Context(group, planned, rows, data, request_reference(w, data, requests),
                       w.tolerance(), settings, timeout_s, pin, memory_limit, workdir)
        for p in planned.values():
            p.base["tolerance"] = {"rtol": ctx.tol.rtol, "atol": ctx.tol.atol}
        ready = sorted(planned)
        turn = rotation(len(ready), round_index or 0)
        batches: list[tuple[list[int], bool]] = [([ready[k] for k in turn], False)]
        while batches:
            batch, alone = batches.pop(0)
            batches += ctx.run(batch, alone)
    return [rows[i] for i in range(len(group.cells))]


def group_cost(resp: dict[str, Any], wall_s: float) -> dict[str, float]:
    """Where one group worker's time went: `fixed_s` is everything but warm-up and samples
    (process start and imports, compile, instantiate, set-up, checks)."""
    g = resp.get("group", {})
    measure = float(g.get("measure_s", 0.0))
    return {"wall_s": wall_s, "measure_s": measure, "load_s": float(g.get("load_s", 0.0)),
            "start_s": max(0.0, wall_s - float(resp.get("worker_s", wall_s))),
            "fixed_s": max(0.0, wall_s - measure)}


class _Context:
    """What every worker of one group round shares: plans, data, reference, limits."""

    def __init__(self, group: Group, planned: dict[int, PlannedCell],
                 rows: dict[int, ResultRow], data: dict[str, np.ndarray],
                 reference: dict[str, np.ndarray], tol: Tolerance, settings: MeasureSettings,
                 timeout_s: float, pin: Sequence[int], memory_limit: int | None,
                 workdir: Path | None) -> None:
        self.group, self.planned, self.rows = group, planned, rows
        self.data, self.reference, self.tol, self.settings = data, reference, tol, settings
        self.timeout_s, self.pin, self.memory_limit = timeout_s, pin, memory_limit
        self.workdir = workdir

    def run(self, batch: list[int], alone: bool) -> list[tuple[list[int], bool]]:
        """One worker for `batch` (variants in load order); fills `rows`; returns the
        batches still to run after a worker that died."""
        with tempfile.TemporaryDirectory(prefix="membench-group-", dir=self.workdir) as tmp:
            return self._run(batch, alone, Path(tmp))

    def _run(self, batch: list[int], alone: bool, d: Path) -> list[tuple[list[int], bool]]:
        variants = []
        for i in batch:
            path = d / f"v{i}.plan.json"
            path.write_text(self.planned[i].plan.to_json(), encoding="utf-8")
            variants.append({"strategy": self.planned[i].cell.strategy.spec,
                             "runtime": self.planned[i].cell.runtime.spec,
                             "plan_path": str(path)})
        blame = d / "blame"
        runtime = worker_runtime([self.planned[i].cell.runtime for i in batch])
        request = pinned({"kind": "group", "runtime": runtime.spec,
                          "variants": variants, "inputs": save_tensors(d, self.data),
                          "settings": self.settings.to_dict(), "blame_path": str(blame)},
                         self.pin)
        outcome = run_worker(runtime, request, d, self.timeout_s * len(batch),
                             memory_limit=self.memory_limit)
        resp = outcome.response or {}

        def prepared(i: int) -> PreparedCell:
            p = self.planned[i]
            # the outputs of this plan's requests (a group's data serves its largest batch)
            own = {k: self.reference[k]
                   for k in output_names(p.cell.workload, p.plan.requests)}
            return PreparedCell(p.cell, p.base, p.t0, d, request, own, self.tol, self.data)

        if outcome.status == "ok" and isinstance(resp.get("variants"), list) \
                and len(resp["variants"]) == len(batch):
            worker = uuid.uuid4().hex[:12]
            cost = group_cost(resp, outcome.wall_s)
            for i, v in zip(batch, resp["variants"], strict=True):
                v = dict(v or {"status": "crashed", "message": "the worker returned nothing"})
                # a group of two drivers says per variant which runtime ran it
                v["runtime"] = v.get("runtime") or resp.get("runtime")
                v["affinity"] = resp.get("affinity")
                if isinstance(v.get("timing"), dict):
                    # a worker that ran its variants as several programs, one after the
                    # other, says which: samples pair only within one
                    gid = worker if "subgroup" not in v else f"{worker}.{v['subgroup']}"
                    v["timing"] = {**v["timing"], "group": len(batch), "group_id": gid,
                                   "group_cost": cost}
                self.rows[i] = finish_cell(prepared(i), WorkerOutcome(
                    str(v.get("status", "crashed")), str(v.get("message", "")), v,
                    outcome.wall_s))
            return []
        if outcome.status == "ok":  # a worker that answered, but not for every variant
            outcome = WorkerOutcome("crashed", outcome.message or "the worker's answer lists "
                                    "no variants", resp, outcome.wall_s)
        if alone or len(batch) == 1:
            for i in batch:
                self.rows[i] = finish_cell(prepared(i), outcome if not alone else WorkerOutcome(
                    outcome.status, f"{outcome.message} (measured alone after its comparison "
                    "group's worker died)", None, outcome.wall_s))
            return []
        culprit = read_blame(blame)
        if culprit is None or culprit >= len(batch):  # no one named: each variant alone
            return [([i], True) for i in batch]
        suspect = batch[culprit]
        return [([i for i in batch if i != suspect], False), ([suspect], True)]

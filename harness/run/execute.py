"""Stage 4 of a run: measure the schedule, round by round, writing every row at once.

Per runtime first an empty-plan `baseline` worker (the memory baseline); then each round
runs every unfinished job once in that round's order, a fresh worker each (an A/B pair in
lockstep: both workers together). Each round's row is appended and fsync'd before the next
worker starts; a job's final row follows its last round (or its first failing round),
annotated with its runtime's noop and baseline. The first Ctrl-C stops after the current
worker (`GracefulStop.check`), the second at once.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.probes.estimate import CallCosts
from harness.probes.probe import ProbeResult
from harness.run.calibration import annotate, baseline_cell
from harness.run.cell import run_cell
from harness.run.group import run_group
from harness.run.insts import can_count, count_runtime, counted_together, wants_insts
from harness.run.interrupt import GracefulStop
from harness.run.pair import run_pair
from harness.run.request import Cell, Group, RunRequest
from harness.run.resume import RunKey
from harness.run.schedule import Ledger, quick_settings
from harness.runtimes.base import Runtime
from harness.store.rows import ResultRow, ResultsWriter

#: (cell rounds done, cell rounds in all, the cell (or the group about to start, or what
#: a stage after the rounds is doing), its row or None when it is about to start)
ProgressFn = Callable[[int, int, Cell | Group | str, ResultRow | None], None]


class RoundRunner:
    """Runs a schedule's rounds into a ledger and a results file."""

    def __init__(self, ledger: Ledger, req: RunRequest, run_id: str, pin: tuple[int, ...],
                 probes: Mapping[str, ProbeResult], costs: Mapping[str, CallCosts],
                 writer: ResultsWriter, stop: GracefulStop,
                 progress: ProgressFn | None) -> None:
        self.ledger, self.req, self.run_id, self.pin = ledger, req, run_id, pin
        self.probes, self.costs = probes, costs
        self.writer, self.stop, self.progress = writer, stop, progress
        self.schedule = ledger.schedule
        self.done_count = ledger.rounds_done()
        #: per group worker: where its time went (`harness.run.group.group_cost`)
        self.group_costs: list[dict[str, float]] = []
        #: the metrics of the `counts` rows this runner wrote, by cell and side
        self.counted: dict[RunKey, dict[str, Any]] = {}

    def finish_failed(self) -> None:
        """Final rows for jobs whose failed round was written but whose final row was not."""
        for j in self.ledger.unfinished_failures():
            self.writer.append(self.ledger.fold(j))

    def baselines(self, runtimes: Mapping[str, Runtime]) -> None:
        quick = quick_settings(self.schedule.settings)
        for spec, rt in runtimes.items():
            if spec in self.ledger.baselines:
                continue
            self.stop.check()
            row = run_cell(baseline_cell(rt), self.run_id, quick, self.req.cell_timeout,
                           self.probes[spec], pin=self.pin,
                           memory_limit=self.req.worker_memory_limit)
            self.ledger.baselines[spec] = row = dataclasses.replace(row, kind="baseline")
            self.writer.append(row)

    def _record(self, j: int, rnd: int, pos: int, row: ResultRow) -> None:
        self.writer.append(row)
        self.done_count += 1
        final = self.ledger.add_round(j, rnd, pos, row)
        if final is not None:
            self.done_count += self.schedule.settings.rounds - 1 - rnd  # not run again
            self.writer.append(final)
        if self.progress:
            self.progress(self.done_count, self.schedule.total, self.schedule.jobs[j], row)

    def round(self, rnd: int) -> None:
        """Every unit still pending in round `rnd`, in that round's order."""
        s = self.schedule
        for pos, u in enumerate(s.orders[rnd]):
            if s.grouped[u]:
                self._group(rnd, pos, s.units[u])
            else:
                self._cell(rnd, pos, s.units[u][0])

    def _group(self, rnd: int, pos: int, unit: tuple[int, ...]) -> None:
        pending = [j for j in unit if self.ledger.pending(j, rnd)]
        if not pending:
            return
        self.stop.check()
        s, req = self.schedule, self.req
        group = Group(tuple(s.jobs[j] for j in pending))
        if self.progress:
            self.progress(self.done_count, s.total, group, None)
        rows = run_group(group, self.run_id, s.settings, req.cell_timeout, self.probes,
                         round_index=rnd, pin=self.pin, memory_limit=req.worker_memory_limit,
                         costs=self.costs, budget_s=req.cell_budget)
        cost = next((r.timing["group_cost"] for r in rows if "group_cost" in r.timing), None)
        if cost is not None:
            self.group_costs.append(cost)
        for j, row in zip(pending, rows, strict=True):
            self._record(j, rnd, pos, row)

    def cost_summary(self) -> dict[str, float | int]:
        """The run.json record of what the group workers cost: `fixed_s` is a worker's
        time outside warm-up and samples (start, imports, compile, set-up, checks)."""
        if not self.group_costs:
            return {"workers": 0}
        fixed = [c["fixed_s"] for c in self.group_costs]
        return {"workers": len(fixed), "fixed_s_median": statistics.median(fixed),
                "fixed_s_total": sum(fixed),
                "start_s_median": statistics.median(c["start_s"] for c in self.group_costs),
                "wall_s_total": sum(c["wall_s"] for c in self.group_costs)}

    def _cell(self, rnd: int, pos: int, j: int) -> None:
        s, req, jobs = self.schedule, self.req, self.schedule.jobs
        if not self.ledger.pending(j, rnd):
            return
        self.stop.check()
        cell = jobs[j]
        if self.progress:
            self.progress(self.done_count, s.total, cell, None)
        mate = s.partner.get(j)
        if mate is not None and self.ledger.pending(mate, rnd):
            row_j, row_mate = run_pair(
                cell, jobs[mate], self.run_id, s.settings, req.cell_timeout,
                (self.probes[cell.runtime.spec], self.probes[jobs[mate].runtime.spec]),
                round_index=rnd, pin=self.pin, memory_limit=req.worker_memory_limit)
            self._record(j, rnd, pos, row_j)
            self._record(mate, rnd, s.position(rnd, mate), row_mate)
            return
        self._record(j, rnd, pos, run_cell(
            cell, self.run_id, s.settings, req.cell_timeout, self.probes[cell.runtime.spec],
            round_index=rnd, pin=self.pin, memory_limit=req.worker_memory_limit,
            costs=self.costs.get(cell.runtime.spec), budget_s=req.cell_budget,
            lockstep_fds=req.lockstep_fds if s.kinds[j] == "cell" else None))

    def count(self, have: Collection[RunKey] = ()) -> None:
        """`--measure insts`: after the timed rounds (valgrind would disturb them), the
        instructions of every finished cell that asked for them, in counted workers
        (`harness.run.insts`: one per runtime and side for a Python worker, one per
        comparison group for a JavaScript one: `counted_together`), as many at once as this
        process has CPUs: a count does not depend on the machine's load (only the main
        thread's instructions are read). A count can move a little with what its worker ran
        before it, so the A and B sides are counted in workers of the same cells in the
        same order, and a resumed run counts again every cell of a worker that lacks one.
        A cell another checkout ran (`--a-repo`, `--b-repo`) was counted by that checkout.
        Rows are written in the run's order as workers finish."""
        batches: dict[tuple[str, str, str], list[tuple[Cell, ResultRow]]] = {}
        for j, row in sorted(self.ledger.final.items()):
            cell = self.schedule.jobs[j]
            if wants_insts(row) and cell.repo is None:
                batches.setdefault(counted_together(cell), []).append((cell, row))
        todo = [(key, batch) for key, batch in batches.items()
                if not all(c.run_key in have for c, _ in batch)]
        if not todo:
            return
        self.stop.check()
        seed = self.schedule.settings.seed

        def count_one(spec: str, side: str, workload: str,
                      batch: list[tuple[Cell, ResultRow]]) -> list[ResultRow]:
            if self.progress and can_count(batch[0][0].runtime):
                self.progress(self.done_count, self.schedule.total,
                              f"counting instructions of {len(batch)} cells on {spec}"
                              + (f" ({workload})" if workload else "")
                              + (f" (side {side})" if side else "") + " under callgrind",
                              None)
            return count_runtime(batch, seed)

        workers = max(1, min(len(todo), len(os.sched_getaffinity(0))))
        with ThreadPoolExecutor(workers) as pool:
            futures = [(batch, pool.submit(count_one, *key, batch)) for key, batch in todo]
            try:
                for batch, future in futures:
                    for (cell, _), row in zip(batch, future.result(), strict=True):
                        self.writer.append(row)
                        self.counted[cell.run_key] = row.metrics
                    self.stop.check()
            except KeyboardInterrupt:  # the running workers finish; the others never start
                for _, future in futures:
                    future.cancel()
                raise

    def fold_all(self) -> None:
        """Final rows for every job that ran all its rounds, noops before the cells that
        their medians annotate."""
        noop_rows = {self.schedule.jobs[j].runtime.spec: r for j, r in self.ledger.final.items()
                     if self.schedule.kinds[j] == "noop"}
        for j, cell in enumerate(self.schedule.jobs):
            if j in self.ledger.final:
                continue
            row = self.ledger.fold(j)
            spec = cell.runtime.spec
            if self.schedule.kinds[j] == "noop":
                noop_rows[spec] = row
            self.ledger.final[j] = annotate(row, noop_rows.get(spec),
                                            self.ledger.baselines.get(spec))
            self.writer.append(self.ledger.final[j])

"""A/B in one run: both sides measured interleaved on the same machine in the same session.

Every (workload, strategy) gives an A cell and a B cell that run back to back in each
round (the pair's place in the round and which side goes first are shuffled), so drift and
bursts of interference hit both sides alike; the rows carry `side`, and the comparison
pairs A's and B's cells by (workload, strategy), ranking one median per round.
Sides may differ in runtime configuration (`wasmtime` vs `wasmtime:bounds=explicit`) or in
runtime version (`wasmtime@49.0.0` vs `wasmtime@50.0.1`: cached worker environments).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.cell import Cell
from harness.compare import RunComparison, compare_runs
from harness.results import ResultRow
from harness.runner import Registries, RunRequest

#: rounds a side when neither the suite nor --rounds asks for more. The comparison ranks one
#: median per round (worker process); with R rounds a side the smallest one-sided
#: Mann-Whitney U p-value is 1 / C(2R, R): 1.2e-4 at 8, so even a regression confined to
#: one of a few dozen cells survives Benjamini-Hochberg at alpha 0.01.
AB_ROUNDS = 8


def ab_request(req: RunRequest, rounds_given: bool) -> RunRequest:
    """`req` with at least AB_ROUNDS rounds unless the caller chose the number."""
    if rounds_given or req.settings.rounds >= AB_ROUNDS:
        return req
    return replace(req, settings=replace(req.settings, rounds=AB_ROUNDS))


def ab_cells(req: RunRequest, a: str, b: str, regs: Registries, a_repo: Path | None = None,
             b_repo: Path | None = None) -> list[Cell]:
    """A and B cells, alternating, for every workload × strategy of `req`; a side with a
    repo has its cells planned and run by that checkout's own membench."""
    workloads = [regs.workloads.create(s) for s in req.workloads]
    strategies = [regs.strategies.create(s) for s in req.strategies]
    rt_a, rt_b = regs.runtimes.create(a), regs.runtimes.create(b)
    for w in workloads:
        w.check_limits(req.max_memory)
    cells = []
    for w, s in itertools.product(workloads, strategies):
        cells += [Cell(w, s, rt_a, "A", a_repo), Cell(w, s, rt_b, "B", b_repo)]
    return cells


def compare_sides(rows: Sequence[ResultRow], threshold: float, alpha: float) -> RunComparison:
    """B (current) against A (base), cells paired by (workload, strategy)."""
    side_a = [r for r in rows if r.side == "A"]
    side_b = [r for r in rows if r.side == "B"]
    label = f"{side_a[0].runtime} → {side_b[0].runtime}" if side_a and side_b else "A → B"
    return compare_runs([replace(r, runtime=label) for r in side_a],
                        [replace(r, runtime=label) for r in side_b], threshold, alpha)

"""A/B in one run: both sides measured interleaved on the same machine in the same session.

Every (workload, strategy) gives an A cell and a B cell that run together in each round
(the pair's place in the round and which side goes first are shuffled): both workers are
alive at once and take their samples alternately (`harness.worker.lockstep`), so drift and
bursts of interference hit both sides of a pair of samples alike. The rows carry `side`;
the comparison pairs A's and B's cells by (workload, strategy) and tests the rounds' median
pair ratios. `--no-lockstep` runs the two cells one after the other instead, and the
comparison ranks one median per round of each side.
Sides may differ in runtime configuration (`wasmtime` vs `wasmtime:bounds=explicit`) or in
runtime version (`wasmtime@49.0.0` vs `wasmtime@50.0.1`: cached worker environments).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from harness.analysis.compare import RunComparison, compare_runs
from harness.run.request import Cell, Registries, RunRequest
from harness.store.rows import ResultRow

#: rounds a side when neither the suite nor --rounds asks for more. The comparison tests one
#: median pair ratio per round (Wilcoxon signed-rank, `stats.compare_paired`): with R rounds
#: its smallest one-sided p-value is 1 / 2^R, 1e-3 at 10, so a regression seen in all
#: rounds but one (a round the host disturbed) still passes alpha 0.01 after
#: Benjamini-Hochberg over a suite. Unpaired (--no-lockstep) the floor is 1 / C(2R, R).
AB_ROUNDS = 10
#: samples a round when neither the suite nor --repeat asks for more: the round's median
#: pair ratio then shrugs off a few pairs that a burst of interference split
AB_SAMPLES = 10


def ab_request(req: RunRequest, rounds_given: bool, lockstep: bool = True,
               samples_given: bool = False) -> RunRequest:
    """`req` with at least AB_ROUNDS rounds and AB_SAMPLES samples unless the caller chose
    them, and the pairs run in lockstep unless told not to."""
    s = req.settings
    rounds = s.rounds if rounds_given else max(s.rounds, AB_ROUNDS)
    samples = s.samples if samples_given else max(s.samples, AB_SAMPLES)
    return replace(req, lockstep=lockstep,
                   settings=replace(s, rounds=rounds, samples=samples))


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

"""Counts beside time (`--measure fuel`, `--measure insts`): the wasm operators one
inference executes (wasmtime's fuel, in a counting pass of its own) and the native
instructions (callgrind, in a counted worker of its own), each against `shared` on the
same workload and engine, and how well the counts predict time over the run (Spearman's
rank correlation). A count does not move with the host's noise: where a strategy's time
and its count move together, the count explains the time (paged host-call's inline cache
checks are operators; per-module's copies are instructions, not operators); where they do
not (a bounds-check or codegen change), a gate on counts would miss it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.counts import COUNTED
from harness.analysis.strategies import BASELINE
from harness.run.insts import MISSES
from harness.store.rows import ResultRow

#: every per-inference count a cell may have: the gated ones, then the simulated misses
MEASURES = (*COUNTED, *MISSES)


@dataclass(frozen=True)
class CellCounts:
    workload: str
    runtime: str
    strategy: str
    median_s: float | None
    counts: dict[str, int]            # measure -> count per inference
    vs_baseline: dict[str, float]     # measure -> count over the baseline strategy's


@dataclass(frozen=True)
class CountFit:
    measure: str
    cells: int
    spearman: float                   # rank correlation of count and time over the cells


def cell_counts(rows: Sequence[ResultRow]) -> list[CellCounts]:
    """Every ok cell with at least one count, with its baseline's where that was counted."""
    def counts(r: ResultRow) -> dict[str, int]:
        return {m: int(r.metrics[m]) for m in MEASURES if isinstance(r.metrics.get(m), int)}

    ok = {(r.workload, r.runtime, r.strategy, r.side): r for r in rows
          if r.kind == "cell" and r.status == "ok" and counts(r)}
    out = []
    for (w, rt, s, side), r in sorted(ok.items()):
        mine = counts(r)
        base = ok.get((w, rt, BASELINE, side))
        theirs = counts(base) if base is not None else {}
        out.append(CellCounts(w, rt, s, r.median_s, mine,
                              {m: mine[m] / theirs[m] for m in mine if theirs.get(m)}))
    return out


def count_fits(cells: Sequence[CellCounts]) -> list[CountFit]:
    """Per measure, Spearman's correlation of count and median time over the counted cells
    (how far a gate on the count can stand in for one on time)."""
    from scipy.stats import spearmanr

    out = []
    for m in MEASURES:
        pairs = [(c.counts[m], c.median_s) for c in cells if m in c.counts and c.median_s]
        if len(pairs) >= 3:
            rho = spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
            if not math.isnan(rho):
                out.append(CountFit(m, len(pairs), float(rho)))
    return out

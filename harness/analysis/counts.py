"""A/B on counts: each cell's counts on side B against side A (`--measure fuel`: wasm
operators; `--measure insts`: native instructions).

A count is deterministic where time is not (A/A counts are identical: tests/test_fuel.py),
so a CI gate on counts can use a threshold far below the time verdict's band (default
1%) without false alarms; it sees only changes in executed work, not in how fast the
machine runs it (a codegen or bounds-check change moves time, not counts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.store.rows import ResultRow

#: counts the A/B gate compares, by the metric that holds them
COUNTED = ("fuel", "insts")
COUNT_THRESHOLD = 0.01


@dataclass(frozen=True)
class CountChange:
    workload: str
    strategy: str
    measure: str
    a: int | None
    b: int | None
    ratio: float | None
    verdict: str              # more, less, same, or uncounted (with `reason`)
    reason: str = ""


def compare_counts(rows: Sequence[ResultRow], threshold: float = COUNT_THRESHOLD
                   ) -> list[CountChange]:
    """Every cell counted on both sides, B's count over A's: `more` beyond +threshold,
    `less` below 1/(1+threshold), else `same`; `uncounted` with the reason otherwise."""
    sides: dict[tuple[str, str], dict[str, ResultRow]] = {}
    for r in rows:
        if r.kind == "cell" and r.side in ("A", "B"):
            sides.setdefault((r.workload, r.strategy), {})[r.side] = r
    out = []
    for (w, s), pair in sorted(sides.items()):
        for measure in COUNTED:
            got = {k: pair[k].metrics.get(measure) if k in pair and pair[k].status == "ok"
                   else None for k in ("A", "B")}
            a, b = got["A"], got["B"]
            if not (isinstance(a, int) and isinstance(b, int) and a > 0):
                why = next((pair[k].metrics.get(f"{measure}_reason") or pair[k].reason
                            for k in ("A", "B") if k in pair and not isinstance(got[k], int)),
                           "a side did not run")
                out.append(CountChange(w, s, measure, a if isinstance(a, int) else None,
                                       b if isinstance(b, int) else None, None, "uncounted",
                                       str(why)))
                continue
            ratio = b / a
            verdict = ("more" if ratio > 1 + threshold else
                       "less" if ratio < 1 / (1 + threshold) else "same")
            out.append(CountChange(w, s, measure, a, b, ratio, verdict))
    return out


#: the issue's goal for A/A runs: identical counts, or a CV within this
COUNT_CV_TARGET = 0.001


@dataclass(frozen=True)
class CountAgreement:
    measure: str
    cells: int                # cells counted in both runs
    identical: int
    worst_cv: float           # the largest CV of a cell's two counts


def count_agreement(base: Sequence[ResultRow], current: Sequence[ResultRow]
                    ) -> list[CountAgreement]:
    """Per count, how two runs of the same cells agree (an A/A check of determinism)."""
    def counted(rows: Sequence[ResultRow], m: str) -> dict[tuple[str, str, str, str], int]:
        return {(r.workload, r.strategy, r.runtime, r.side): int(r.metrics[m]) for r in rows
                if r.kind == "cell" and r.status == "ok" and isinstance(r.metrics.get(m), int)}
    out = []
    for m in COUNTED:
        a, b = counted(base, m), counted(current, m)
        both = [(a[k], b[k]) for k in a.keys() & b.keys() if a[k] + b[k] > 0]
        if both:
            cvs = [2 ** 0.5 * abs(x - y) / (x + y) for x, y in both]
            out.append(CountAgreement(m, len(both), sum(x == y for x, y in both), max(cvs)))
    return out

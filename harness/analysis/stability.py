"""Run-to-run agreement: do two runs of the same cells agree within their own intervals?

For every cell present and `ok` in both runs: the ratio of medians (current / base) with
its bootstrap 95% CI (`harness.analysis.stats.compare_samples`). Two runs of identical code on an
undisturbed machine should have 1.0 inside that interval for about 95% of cells; far
fewer means the intervals understate run-to-run noise (or the machine was disturbed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.compare import CellKey, paired_round_sizes
from harness.analysis.stats import compare_samples
from harness.results.rows import ResultRow


@dataclass(frozen=True)
class CellAgreement:
    key: CellKey
    base_median: float
    current_median: float
    ratio: float
    ci_low: float
    ci_high: float
    #: whether the CI came from the two-level bootstrap over rounds
    by_round: bool = False

    @property
    def within(self) -> bool:
        return self.ci_low <= 1.0 <= self.ci_high


def agreement(base: Sequence[ResultRow], current: Sequence[ResultRow],
              seed: int = 0, by_round: bool = True) -> list[CellAgreement]:
    """Per common ok cell, the ratio of medians and its CI as `membench compare` computes
    it: with `by_round`, the two-level (rounds, then samples) bootstrap where both rows
    have at least two rounds; otherwise, or with `by_round=False`, the flat one."""
    def ok(rows: Sequence[ResultRow]) -> dict[CellKey, ResultRow]:
        return {(r.workload, r.strategy, r.runtime): r for r in rows
                if r.kind == "cell" and r.status == "ok" and r.samples_s}

    b, c = ok(base), ok(current)
    out = []
    for key in sorted(set(b) & set(c)):
        groups = paired_round_sizes(b[key], c[key]) if by_round else (None, None)
        cmp = compare_samples(b[key].samples_s, c[key].samples_s, seed=seed,
                              base_groups=groups[0], current_groups=groups[1])
        out.append(CellAgreement(key, float(b[key].median_s or 0.0),
                                 float(c[key].median_s or 0.0), cmp.ratio, cmp.ci_low,
                                 cmp.ci_high, cmp.unit == "round"))
    return out


def fraction_within(cells: Sequence[CellAgreement]) -> float:
    return sum(c.within for c in cells) / len(cells) if cells else float("nan")

"""Run-to-run agreement: do two runs of the same cells agree within their own intervals?

For every cell present and `ok` in both runs: the ratio of medians (current / base) with
its bootstrap 95% CI, as `membench compare` computes it (`CellComparison`). Two runs of
identical code on an undisturbed machine should have 1.0 inside that interval for about
95% of cells; far fewer means the intervals understate run-to-run noise (or the machine
was disturbed).
"""

from __future__ import annotations

from collections.abc import Sequence

from harness.analysis.compare import CellComparison, compare_runs
from harness.store.rows import ResultRow


def agreement(base: Sequence[ResultRow], current: Sequence[ResultRow],
              seed: int = 0, by_round: bool = True) -> list[CellComparison]:
    """Per common ok cell, the ratio of medians and its CI as `membench compare` computes
    it: with `by_round`, the two-level (rounds, then samples) bootstrap where both rows
    have at least two rounds; otherwise, or with `by_round=False`, the flat one. Two runs
    are never paired sample by sample: their rounds ran at different times."""
    return list(compare_runs(base, current, seed=seed, by_round=by_round, pair=False).cells)


def fraction_within(cells: Sequence[CellComparison]) -> float:
    return sum(c.within for c in cells) / len(cells) if cells else float("nan")

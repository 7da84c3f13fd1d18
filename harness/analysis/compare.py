"""Comparing two runs cell by cell with a statistical verdict that does not cry wolf.

Per cell: ratio of medians (current / base) with a bootstrap 95% CI, and one-sided
Mann-Whitney U tests in both directions; p-values are Benjamini-Hochberg corrected across
cells (per direction). When both rows ran in lockstep (`membench ab`: sample i of B right
before or after sample i of A, `harness.worker.lockstep`), the ratio is the median of the pairs'
ratios and the test is its paired form, Wilcoxon signed-rank (`stats.compare_paired`).
Verdicts:

* `slower`    — corrected p(slower) < alpha and ratio > 1 + threshold
* `faster`    — corrected p(faster) < alpha and ratio < 1 / (1 + threshold)
* `unchanged` — the ratio's CI lies inside [1 / (1 + threshold), 1 + threshold]
* `unsure`    — neither: too noisy to tell (said so, never passed off as unchanged)

The band is symmetric in log space, so "10% slower" and "10% faster" mean the same size
of change.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.analysis.stats import compare_paired, compare_samples
from harness.store.rows import CellKey, ResultRow

VERDICTS = ("slower", "faster", "unchanged", "unsure")


@dataclass(frozen=True)
class CellComparison:
    key: CellKey
    base_median: float
    current_median: float
    ratio: float
    ci_low: float
    ci_high: float
    p_slower: float
    p_faster: float
    q_slower: float            # Benjamini-Hochberg adjusted
    q_faster: float
    n_base: int
    n_current: int
    verdict: str
    #: what Mann-Whitney U ranked: "round" medians (one per worker process) or "sample"s
    unit: str = "sample"
    units_base: int = 0
    units_current: int = 0

    @property
    def cell(self) -> str:
        return str(self.key)

    @property
    def within(self) -> bool:
        """Whether 1.0 lies inside the ratio's CI: two runs of the same code should agree
        so on about 95% of cells (`harness.analysis.stability`)."""
        return self.ci_low <= 1.0 <= self.ci_high

    @property
    def units(self) -> str:
        """What was ranked, e.g. "8/8 rounds" (base/current)."""
        return f"{self.units_base}/{self.units_current} {self.unit}s"


@dataclass(frozen=True)
class RunComparison:
    threshold: float
    alpha: float
    cells: tuple[CellComparison, ...]
    only_base: tuple[CellKey, ...] = ()
    only_current: tuple[CellKey, ...] = ()
    #: cells present on both sides but not `ok` on at least one (key, base status, current status)
    not_comparable: tuple[tuple[CellKey, str, str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.cells if c.verdict == verdict)

    @property
    def regressed(self) -> bool:
        return self.count("slower") > 0


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """BH-adjusted p-values (q-values), monotone and capped at 1."""
    arr = np.asarray(p, dtype=np.float64)
    n = arr.size
    if n == 0:
        return []
    order = np.argsort(arr)
    ranked = arr[order] * n / np.arange(1, n + 1)
    # enforce monotonicity from the largest p downwards
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]


def verdict_for(ratio: float, ci_low: float, ci_high: float, q_slower: float, q_faster: float,
                threshold: float, alpha: float) -> str:
    hi, lo = 1.0 + threshold, 1.0 / (1.0 + threshold)
    if q_slower < alpha and ratio > hi:
        return "slower"
    if q_faster < alpha and ratio < lo:
        return "faster"
    if lo <= ci_low and ci_high <= hi:
        return "unchanged"
    return "unsure"


def round_sizes(row: ResultRow) -> list[int] | None:
    """Samples per round of a cell row (None when it has fewer than two rounds)."""
    sizes = [int(r.get("n", 0)) for r in row.rounds]
    if len(sizes) < 2 or sum(sizes) != len(row.samples_s) or min(sizes) <= 0:
        return None
    return sizes


def paired_round_sizes(base: ResultRow, current: ResultRow
                       ) -> tuple[list[int] | None, list[int] | None]:
    """Both rows' round sizes when both have 2+ rounds (the round is then the unit of a
    comparison), else (None, None): the samples are."""
    groups = (round_sizes(base), round_sizes(current))
    return (None, None) if None in groups else groups


def lockstep_sizes(base: ResultRow, current: ResultRow) -> list[int] | None:
    """Samples per round when every round of both rows ran in lockstep with equal sample
    counts (sample i of one side paired with sample i of the other), else None."""
    if not base.rounds or not all(r.get("lockstep") for r in (*base.rounds, *current.rounds)):
        return None
    sizes = [int(r.get("n", 0)) for r in base.rounds]
    if sizes != [int(r.get("n", 0)) for r in current.rounds] or min(sizes) <= 0 \
            or not sum(sizes) == len(base.samples_s) == len(current.samples_s):
        return None
    return sizes


def _cells(rows: Sequence[ResultRow]) -> dict[CellKey, ResultRow]:
    return {r.key: r for r in rows if r.kind == "cell"}


def compare_runs(base: Sequence[ResultRow], current: Sequence[ResultRow],
                 threshold: float = 0.05, alpha: float = 0.01, seed: int = 0,
                 key_map: Any = None, by_round: bool = True, pair: bool = True
                 ) -> RunComparison:
    """Match cells by (workload, strategy, runtime) and compare their samples.

    `key_map` (optional callable) rewrites keys before matching, e.g. to pair an A/B
    run's `wasmtime` cells with its `wasmtime:bounds=explicit` cells. With `by_round`
    the round is the unit where both rows have two or more rounds (the two-level
    bootstrap); with `pair`, rows whose rounds ran in lockstep are compared pair by pair.
    """
    b, c = _cells(base), _cells(current)
    if key_map is not None:
        b = {key_map(k, "base"): v for k, v in b.items()}
        c = {key_map(k, "current"): v for k, v in c.items()}
    only_b = tuple(sorted(set(b) - set(c)))
    only_c = tuple(sorted(set(c) - set(b)))
    pending = []
    skipped = []
    for key in sorted(set(b) & set(c)):
        rb, rc = b[key], c[key]
        if rb.status != "ok" or rc.status != "ok" or not rb.samples_s or not rc.samples_s:
            skipped.append((key, rb.status, rc.status))
            continue
        paired = lockstep_sizes(rb, rc) if pair else None
        if paired is not None:
            cmp = compare_paired(rb.samples_s, rc.samples_s, paired, seed=seed)
        else:
            groups = paired_round_sizes(rb, rc) if by_round else (None, None)
            cmp = compare_samples(rb.samples_s, rc.samples_s, seed=seed,
                                  base_groups=groups[0], current_groups=groups[1])
        pending.append((key, rb, rc, cmp))
    q_s = benjamini_hochberg([p[3].p_slower for p in pending])
    q_f = benjamini_hochberg([p[3].p_faster for p in pending])
    cells = []
    for (key, rb, rc, cmp), qs, qf in zip(pending, q_s, q_f, strict=True):
        cells.append(CellComparison(
            key=key, base_median=float(np.median(rb.samples_s)),
            current_median=float(np.median(rc.samples_s)), ratio=cmp.ratio,
            ci_low=cmp.ci_low, ci_high=cmp.ci_high, p_slower=cmp.p_slower,
            p_faster=cmp.p_faster, q_slower=qs, q_faster=qf, n_base=len(rb.samples_s),
            n_current=len(rc.samples_s),
            verdict=verdict_for(cmp.ratio, cmp.ci_low, cmp.ci_high, qs, qf, threshold, alpha),
            unit=cmp.unit, units_base=cmp.n_base, units_current=cmp.n_current))
    return RunComparison(threshold, alpha, tuple(cells), only_b, only_c, tuple(skipped),
                         tuple(power_notes(cells, alpha)))


def power_notes(cells: Sequence[CellComparison], alpha: float) -> list[str]:
    """What the comparison cannot see with the units it has."""
    notes = []
    # The smallest one-sided Mann-Whitney U p-value n1 and n2 units can give is
    # 1 / C(n1 + n2, n1). Below alpha no cell can ever be flagged; below alpha / k a
    # regression confined to one cell cannot survive Benjamini-Hochberg over k cells.
    k = max(len(cells), 1)

    # Paired units (lockstep) are tested by Wilcoxon signed-rank: its floor is 1 / 2^n.
    def floor(cc: CellComparison) -> float:
        if cc.unit.startswith("pair"):
            return 0.5 ** cc.units_base
        return 1 / math.comb(cc.units_base + cc.units_current, cc.units_base)

    def what(group: Sequence[CellComparison]) -> str:
        n = min(min(cc.units_base, cc.units_current) for cc in group)
        units = {cc.unit for cc in group}
        unit = f"{units.pop()}s" if len(units) == 1 else "units"
        return f"as few as {n} {unit} a side"

    never = [cc for cc in cells if floor(cc) >= alpha]
    lone = [cc for cc in cells if k * floor(cc) >= alpha]
    if never:
        notes.append(f"{len(never)} cells have too few units ({what(never)}) for the rank "
                     f"test ever to reach alpha {alpha:g}: they can only be `unchanged` or "
                     "`unsure`; run more rounds (--rounds)")
    elif lone:
        notes.append(f"with {what(lone)}, a change confined to a few of the {k} cells cannot "
                     f"reach alpha {alpha:g} after correction; run more rounds (--rounds) to "
                     "see isolated regressions")
    single = [cc for cc in cells if cc.unit in ("sample", "pair")]
    if single:
        notes.append(f"{len(single)} cells have a single round (one worker process) on a side: "
                     "their samples are ranked as if independent, so p-values and CIs leave "
                     "out the worker-to-worker spread and can call a few percent of noise "
                     "significant; run both sides with --rounds 5 or more")
    return notes


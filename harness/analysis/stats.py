"""Statistics on timing samples: robust summaries and two-sample comparisons.

Medians and bootstrap intervals rather than means and normal theory: timing samples are
skewed (interference only ever adds time). Comparisons follow the practice of Google
Benchmark's compare.py (Mann-Whitney U) and asv (ratio of medians with a threshold).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

BOOTSTRAP = 2000
#: scales the median absolute deviation to the standard deviation of a normal sample
MAD_TO_SD = 1.4826


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    mean: float
    stdev: float
    iqr: float
    cv: float                 # stdev / mean
    ci_low: float             # bootstrap 95% CI of the median
    ci_high: float
    outliers: int             # samples outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR] (flagged, kept)
    q1: float = float("nan")
    q3: float = float("nan")
    minimum: float = float("nan")
    maximum: float = float("nan")
    outlier_index: tuple[int, ...] = ()  # positions of the flagged samples
    #: robust CV: 1.4826 * MAD / median (equals the CV for normal samples; a burst of
    #: interference that slows a few samples by 1.5x moves it little, the CV a lot)
    rcv: float = float("nan")

    @property
    def rel_iqr(self) -> float:
        return self.iqr / self.median if self.median else float("nan")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["outlier_index"] = list(self.outlier_index)
        return d


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


#: bound on resampled values held at once (keeps big sample sets, e.g. imported
#: pytest-benchmark runs with 20k rounds, at a few MB)
_CHUNK_VALUES = 1 << 21


def bootstrap_medians(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `n_boot` resamples (with replacement) of `x`."""
    out = np.empty(n_boot)
    step = max(1, _CHUNK_VALUES // max(x.size, 1))
    for start in range(0, n_boot, step):
        k = min(step, n_boot - start)
        out[start:start + k] = np.median(x[rng.integers(0, x.size, size=(k, x.size))], axis=1)
    return out


def _group_bounds(x: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    bounds = np.cumsum([0, *sizes])
    if bounds[-1] != x.size or any(n <= 0 for n in sizes):
        raise ValueError(f"group sizes {list(sizes)} do not partition {x.size} samples")
    return bounds


def bootstrap_medians_grouped(x: np.ndarray, sizes: Sequence[int], n_boot: int,
                              rng: np.random.Generator) -> np.ndarray:
    """Medians of `n_boot` two-level resamples: groups (rounds, i.e. worker processes)
    drawn with replacement, then samples drawn with replacement within each drawn group.

    Unlike the flat bootstrap, this carries the between-process spread into the interval
    (samples of one process share its page placement, JIT decisions, neighbours).
    """
    bounds = _group_bounds(x, sizes)
    if len(set(sizes)) == 1:  # equal rounds (the usual case): replicates in vectorised chunks
        r, n = len(sizes), sizes[0]
        table = x[:bounds[-1]].reshape(r, n)
        medians = np.empty(n_boot)
        step = max(1, _CHUNK_VALUES // (r * n))
        for lo in range(0, n_boot, step):
            k = min(step, n_boot - lo)
            picked = rng.integers(0, r, size=(k, r, 1))
            within = rng.integers(0, n, size=(k, r, n))
            medians[lo:lo + k] = np.median(table[picked, within].reshape(k, -1), axis=1)
        return medians
    groups = [x[bounds[i]:bounds[i + 1]] for i in range(len(sizes))]
    out = np.empty(n_boot)
    for i in range(n_boot):
        picked = rng.integers(0, len(groups), size=len(groups))
        parts = [g[rng.integers(0, g.size, size=g.size)] for g in (groups[j] for j in picked)]
        out[i] = np.median(np.concatenate(parts))
    return out


def bootstrap_median_ci(x: np.ndarray, level: float = 0.95, n_boot: int = BOOTSTRAP,
                        seed: int = 0) -> tuple[float, float]:
    x = np.asarray(x, dtype=np.float64)
    if x.size == 1:
        return float(x[0]), float(x[0])
    meds = bootstrap_medians(x, n_boot, _rng(seed))
    lo, hi = np.quantile(meds, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def summarize(samples: Sequence[float], seed: int = 0) -> Summary:
    x = np.asarray(samples, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no samples to summarize")
    q1, med, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    iqr = q3 - q1
    mean = float(x.mean())
    sd = float(x.std(ddof=1)) if x.size > 1 else 0.0
    lo, hi = bootstrap_median_ci(x, seed=seed)
    flagged = np.flatnonzero((x < q1 - 1.5 * iqr) | (x > q3 + 1.5 * iqr))
    mad = float(np.median(np.abs(x - med)))
    return Summary(n=int(x.size), median=float(med), mean=mean, stdev=sd, iqr=float(iqr),
                   cv=sd / mean if mean else float("nan"), ci_low=lo, ci_high=hi,
                   outliers=int(flagged.size), q1=float(q1), q3=float(q3),
                   minimum=float(x.min()), maximum=float(x.max()),
                   outlier_index=tuple(int(i) for i in flagged),
                   rcv=MAD_TO_SD * mad / float(med) if med else float("nan"))


@dataclass(frozen=True)
class Comparison:
    ratio: float              # median(current) / median(base); > 1 means slower
    ci_low: float             # bootstrap 95% CI of the ratio
    ci_high: float
    p_slower: float           # one-sided Mann-Whitney U: current > base
    p_faster: float           # one-sided Mann-Whitney U: current < base
    #: what Mann-Whitney U ranked: "round" (one median per worker process) or "sample"
    unit: str = "sample"
    n_base: int = 0           # units ranked on each side
    n_current: int = 0


def group_medians(x: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Median of each consecutive group of `sizes[i]` samples (a round's samples)."""
    bounds = _group_bounds(x, sizes)
    return np.array([np.median(x[bounds[i]:bounds[i + 1]]) for i in range(len(sizes))])


def compare_samples(base: Sequence[float], current: Sequence[float], seed: int = 0,
                    n_boot: int = BOOTSTRAP, base_groups: Sequence[int] | None = None,
                    current_groups: Sequence[int] | None = None) -> Comparison:
    """Ratio of medians with a bootstrap CI, and one-sided Mann-Whitney U both ways.

    With `*_groups` (samples per round, in order) for both sides, the round is the unit:
    the CI comes from the two-level bootstrap (`bootstrap_medians_grouped`) and Mann-Whitney
    U ranks the rounds' medians. Samples of one worker process share its page placement,
    JIT output and the interference it happened to meet, so they are not independent
    replicates: ranked as such, two workers of identical code that differ by a few percent
    yield p-values near zero (pseudo-replication). Without groups the samples are ranked
    and the flat bootstrap gives the CI.
    """
    from scipy.stats import mannwhitneyu

    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if b.size == 0 or c.size == 0:
        raise ValueError("both sample sets need at least one sample")
    ratio = float(np.median(c) / np.median(b))
    rng = _rng(seed)
    if base_groups is not None and current_groups is not None:
        mb = bootstrap_medians_grouped(b, base_groups, n_boot, rng)
        mc = bootstrap_medians_grouped(c, current_groups, n_boot, rng)
        ub, uc, unit = group_medians(b, base_groups), group_medians(c, current_groups), "round"
    else:
        mb = bootstrap_medians(b, n_boot, rng)
        mc = bootstrap_medians(c, n_boot, rng)
        ub, uc, unit = b, c, "sample"
    lo, hi = np.quantile(mc / mb, [0.025, 0.975])
    p_slower = float(mannwhitneyu(uc, ub, alternative="greater").pvalue)
    p_faster = float(mannwhitneyu(uc, ub, alternative="less").pvalue)
    return Comparison(ratio, float(lo), float(hi), p_slower, p_faster, unit,
                      int(ub.size), int(uc.size))


def compare_paired(base: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray,
                   sizes: Sequence[int], seed: int = 0, n_boot: int = BOOTSTRAP) -> Comparison:
    """Lockstep A/B (`harness.worker.lockstep`): sample i of B in a round was taken right before or
    after sample i of A, so each pair's ratio has the interference both met divided out.

    The ratio is exp(median of the pairs' log ratios), its CI the two-level bootstrap of
    that median (rounds, then pairs within a round). With 2+ rounds the round is the unit:
    one-sided Wilcoxon signed-rank tests (the paired Mann-Whitney) on the rounds' median
    log ratios; with one round the pairs are ranked (pseudo-replication, as in
    `compare_samples`)."""
    from scipy.stats import wilcoxon

    b = np.asarray(base, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if b.size != c.size or b.size == 0:
        raise ValueError(f"paired samples need equal, non-zero counts ({b.size} vs {c.size})")
    logs = np.log(c / b)
    rng = _rng(seed)
    if len(sizes) >= 2:
        units, unit = group_medians(logs, sizes), "paired round"
        boot = bootstrap_medians_grouped(logs, sizes, n_boot, rng)
    else:
        units, unit = logs, "pair"
        boot = bootstrap_medians(logs, n_boot, rng)
    lo, hi = np.exp(np.quantile(boot, [0.025, 0.975]))
    if np.all(units == 0):  # identical: no evidence either way
        p_slower = p_faster = 1.0
    else:
        p_slower = float(wilcoxon(units, alternative="greater").pvalue)
        p_faster = float(wilcoxon(units, alternative="less").pvalue)
    return Comparison(float(np.exp(np.median(logs))), float(lo), float(hi), p_slower, p_faster,
                      unit, int(units.size), int(units.size))

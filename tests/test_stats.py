"""Statistics on synthetic samples whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.stats import bootstrap_median_ci, compare_samples, summarize


def test_summary_of_known_samples() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s.n == 5 and s.median == 3.0 and s.mean == 22.0
    assert s.stdev == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1))
    assert s.q1 == 2.0 and s.q3 == 4.0 and s.iqr == 2.0
    assert s.cv == pytest.approx(s.stdev / 22.0)
    # 100 is beyond Q3 + 1.5 IQR = 7: flagged, and still counted in the mean
    assert s.outliers == 1 and s.outlier_index == (4,)
    assert s.minimum == 1.0 and s.maximum == 100.0
    # robust CV: MAD of |x - 3| = [2, 1, 0, 1, 97] is 1, so 1.4826 * 1 / 3
    assert s.rcv == pytest.approx(1.4826 / 3)


def test_robust_cv_tracks_cv_on_normal_samples_and_ignores_bursts() -> None:
    x = 1.0 + 0.02 * np.random.default_rng(0).standard_normal(4000)
    s = summarize(x)
    assert s.rcv == pytest.approx(s.cv, rel=0.1)
    # 3% of the samples slowed by 1.5x, as a burst from another tenant does
    x[:120] *= 1.5
    b = summarize(x)
    assert b.cv > 3 * s.cv and b.rcv < 1.15 * s.rcv


def test_constant_samples_have_zero_spread() -> None:
    s = summarize([2.5] * 10)
    assert s.stdev == 0.0 and s.cv == 0.0 and s.iqr == 0.0 and s.outliers == 0
    assert (s.ci_low, s.ci_high) == (2.5, 2.5)


def test_single_sample_and_empty() -> None:
    s = summarize([3.0])
    assert s.median == 3.0 and s.stdev == 0.0 and (s.ci_low, s.ci_high) == (3.0, 3.0)
    with pytest.raises(ValueError):
        summarize([])


def test_bootstrap_ci_covers_the_true_median() -> None:
    # normal(10, 1): the sample median's 95% CI should cover 10 in ~95% of trials
    rng = np.random.default_rng(1)
    covered = 0
    trials = 200
    for t in range(trials):
        x = rng.normal(10.0, 1.0, size=40)
        lo, hi = bootstrap_median_ci(x, n_boot=500, seed=t)
        covered += lo <= 10.0 <= hi
    assert 0.88 <= covered / trials <= 0.99


def test_compare_detects_a_known_slowdown() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(1.0, 0.01, size=30)
    slow = rng.normal(1.2, 0.01, size=30)
    c = compare_samples(base, slow)
    assert c.ratio == pytest.approx(1.2, rel=0.02)
    assert c.ci_low < c.ratio < c.ci_high and c.ci_low > 1.15
    assert c.p_slower < 1e-6 and c.p_faster > 0.99


def test_compare_same_distribution_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 0.05, size=30), rng.normal(1.0, 0.05, size=30)
    c = compare_samples(a, b)
    assert c.ci_low <= 1.0 <= c.ci_high
    assert c.p_slower > 0.01 and c.p_faster > 0.01


def test_grouped_bootstrap_widens_the_ratio_ci_when_rounds_differ() -> None:
    # three rounds per side whose levels differ by ±3% (process effects), tight within
    rng = np.random.default_rng(4)
    levels_b, levels_c = (0.97, 1.0, 1.03), (1.03, 0.97, 1.0)
    b = np.concatenate([rng.normal(lv, 0.001, 10) for lv in levels_b])
    c = np.concatenate([rng.normal(lv, 0.001, 10) for lv in levels_c])
    flat = compare_samples(b, c)
    grouped = compare_samples(b, c, base_groups=[10, 10, 10], current_groups=[10, 10, 10])
    assert grouped.ratio == flat.ratio
    assert (grouped.ci_high - grouped.ci_low) > 2 * (flat.ci_high - flat.ci_low)
    assert grouped.ci_low <= 1.0 <= grouped.ci_high
    with pytest.raises(ValueError):
        compare_samples(b, c, base_groups=[10, 10], current_groups=[10, 10, 10])

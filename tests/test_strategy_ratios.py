"""The strategy comparison read from rows: paired ratios, verdicts, the matrix, agreement
between runs, and the sentence per runtime."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis.strategies import (
    StrategyRatio,
    geomean_paired,
    pct,
    ratio_agreement,
    ratio_verdict,
    resolution,
    runtime_sentence,
    strategy_matrix,
    strategy_ratios,
)
from harness.store.rows import ResultRow


def _row(workload: str, strategy: str, runtime: str, samples, status: str = "ok",
         group: bool = True, copied: int = 0) -> ResultRow:
    n = len(samples) // 2
    rounds = tuple({"round": i, "n": n, **({"group": 3} if group else {})} for i in range(2))
    return ResultRow(run_id="r", workload=workload, strategy=strategy, runtime=runtime,
                     status=status, samples_s=tuple(samples) if status == "ok" else (),
                     median_s=float(np.median(samples)) if status == "ok" else None,
                     rounds=rounds if status == "ok" else (), bytes_copied_per_run=copied,
                     host_calls_per_run=0, reason="" if status == "ok" else "lacks it")


def _drifting(seed: int, n: int = 20) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 2e-4 * np.exp(rng.normal(0, 0.2, n))


@pytest.mark.parametrize(("ratio", "lo", "hi", "verdict"), [
    (0.92, 0.90, 0.95, "faster"), (1.07, 1.05, 1.10, "slower"), (1.00, 0.99, 1.01, "same"),
    # beyond the band, and significant although the CI reaches into the band
    (1.06, 1.03, 1.09, "slower"), (0.94, 0.91, 0.99, "faster"),
    # beyond the band but not significant: the CI holds 1
    (1.06, 0.99, 1.12, "unsure"), (0.94, 0.88, 1.01, "unsure"),
    # inside the band, and significant: a change smaller than the band is `same`
    (1.04, 1.02, 1.07, "same"),
    # inside the band, but the CI cannot rule out a change of twice the band
    (1.01, 0.94, 1.11, "unsure"), (0.99, 0.89, 1.05, "unsure")])
def test_verdict_from_the_estimate_the_band_and_significance(ratio: float, lo: float,
                                                              hi: float, verdict: str) -> None:
    assert ratio_verdict(ratio, lo, hi, 0.05) == verdict


def test_a_ratio_near_the_band_edge_keeps_its_verdict_as_its_ci_wobbles() -> None:
    """The reason for the rule: per-device at +6% with CIs of differing widths."""
    assert {ratio_verdict(1.06, lo, hi) for lo, hi in
            [(1.047, 1.090), (1.055, 1.070), (1.021, 1.079), (1.052, 1.096)]} == {"slower"}


def test_ratios_pair_within_a_group_and_fall_back_unpaired() -> None:
    drift = _drifting(1)
    rows = [_row("w", "shared", "rt", drift), _row("w", "per-module", "rt", drift * 1.3,
                                                     copied=100),
            _row("w", "multi-memory", "rt", drift * 1.0),
            _row("w2", "shared", "rt", drift, group=False),
            _row("w2", "per-module", "rt", drift[::-1] * 1.3, group=False)]
    ratios = {(q.workload, q.strategy): q for q in strategy_ratios(rows)}
    pm = ratios[("w", "per-module")]
    assert pm.paired and pm.ratio == pytest.approx(1.3) and pm.half_width < 1e-9
    assert pm.verdict == "slower" and ratios[("w", "multi-memory")].verdict == "same"
    unpaired = ratios[("w2", "per-module")]
    assert not unpaired.paired and unpaired.half_width > 0.05


def test_matrix_geomean_missing_and_sentence() -> None:
    d1, d2 = _drifting(1), _drifting(2)
    rows = [_row("a", "shared", "rt", d1), _row("a", "per-module", "rt", d1 * 1.2, copied=64),
            _row("b", "shared", "rt", d2), _row("b", "per-module", "rt", d2 * 1.5, copied=64),
            _row("a", "multi-memory", "rt", d1 * 0.99),
            _row("b", "multi-memory", "rt", [], status="unsupported")]
    matrix = {m.strategy: m for m in strategy_matrix(rows)}
    pm = matrix["per-module"]
    assert pm.geomean == pytest.approx((1.2 * 1.5) ** 0.5) and pm.verdict == "slower"
    assert pm.workloads == 2 and pm.bytes_copied == 64
    mm = matrix["multi-memory"]
    assert mm.workloads == 1 and mm.missing == {"unsupported": (1, "lacks it")}
    assert matrix["shared"].verdict == "baseline"
    text = runtime_sentence("rt", list(matrix.values()), ("per-module", "multi-memory"))
    assert text.startswith("rt: fastest isolating strategy: multi-memory, -1.0%")
    assert text.endswith("; per-module costs +34%.")


def test_geomean_of_paired_ratios_is_as_tight_as_its_pairs() -> None:
    """Two workloads, paired logs with a known spread: the geomean's CI is centred on the
    product's square root and about as wide as the pairs allow (no wider: the drift is
    divided out pair by pair)."""
    rng = np.random.default_rng(7)

    def paired(ratio: float) -> StrategyRatio:
        logs = tuple(np.log(ratio) + rng.normal(0, 0.01, 30))
        return StrategyRatio("w", "s", "rt", ratio, ratio * 0.99, ratio * 1.01, "slower", True,
                             3, 1e-3, 1e-3, logs, (10, 10, 10))

    g, lo, hi = geomean_paired([paired(1.2), paired(1.5)])
    assert g == pytest.approx((1.2 * 1.5) ** 0.5)
    assert lo < g < hi and 0.002 < (hi - lo) / g < 0.02


def test_geomean_ci_covers_the_point() -> None:
    q = [StrategyRatio("w", "s", "rt", 1.1, 1.08, 1.12, "slower", False, 2, 1.0, 1.0),
         StrategyRatio("v", "s", "rt", 0.9, 0.88, 0.92, "faster", False, 2, 1.0, 1.0)]
    g, lo, hi = geomean_paired(q)
    assert g == pytest.approx((1.1 * 0.9) ** 0.5) and lo < g < hi


def test_two_runs_agree_within_their_intervals() -> None:
    def q(ratio: float, hw: float, verdict: str) -> StrategyRatio:
        return StrategyRatio("w", "s", "rt", ratio, ratio * (1 - hw), ratio * (1 + hw),
                             verdict, True, 3, 1e-3, 1e-3)

    agree = ratio_agreement([q(1.10, 0.02, "slower")], [q(1.12, 0.02, "slower")])
    assert agree.within == agree.strict == agree.same_verdict == agree.common == 1
    apart = ratio_agreement([q(1.10, 0.01, "slower")], [q(1.20, 0.01, "slower")])
    assert apart.within == apart.strict == 0 and apart.same_verdict == 1
    assert len(apart.disagreeing) == 1
    # CIs that just overlap agree; their difference is still outside its own interval
    edge = ratio_agreement([q(1.10, 0.02, "slower")], [q(1.14, 0.02, "slower")])
    assert edge.within == 1 and edge.strict == 0


def test_resolution_counts_only_paired_cells_of_100_us() -> None:
    big = StrategyRatio("w", "s", "rt", 1.0, 0.98, 1.02, "same", True, 3, 2e-4, 2e-4)
    small = StrategyRatio("w", "t", "rt", 1.0, 0.5, 1.5, "unsure", True, 3, 1e-5, 1e-5)
    # one round: its pairs come from one worker, so its CI would flatter the figure
    single = StrategyRatio("w", "u", "rt", 1.0, 0.999, 1.001, "same", True, 1, 2e-4, 2e-4)
    res = resolution([big, small, single])
    assert res.ratios == 1 and res.median_half_width == pytest.approx(0.02)
    assert res.verdicts == {"same": 2, "unsure": 1}


def test_rows_of_different_workers_never_pair() -> None:
    """Merged shards: both rows say `group`, same rounds, same counts, but other workers."""
    from dataclasses import replace

    drift = _drifting(4)
    a, b = _row("w", "shared", "rt", drift), _row("w", "per-module", "rt", drift * 1.3)
    a = replace(a, rounds=tuple({**x, "group_id": "one"} for x in a.rounds))
    b = replace(b, rounds=tuple({**x, "group_id": "two"} for x in b.rounds))
    (q,) = strategy_ratios([a, b])
    assert not q.paired


def test_pct() -> None:
    assert (pct(1.35), pct(0.98), pct(1.004)) == ("+35%", "-2.0%", "+0.4%")
    assert (pct(2.0), pct(26.43), pct(2640.4)) == ("2x", "26.4x", "2,640x")

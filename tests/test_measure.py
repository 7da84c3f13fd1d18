"""Warm-up, calibration and sampling against a fake clock with a known cost schedule."""

from __future__ import annotations

from harness.worker.measure import MeasureSettings, is_steady, time_steady, warm_up


class FakeTarget:
    """An inference whose cost (ns) follows `cost(i)`; the clock only moves when it runs."""

    def __init__(self, cost) -> None:
        self.now = 0
        self.i = 0
        self.cost = cost

    def clock(self) -> int:
        return self.now

    def run(self) -> None:
        self.now += self.cost(self.i)
        self.i += 1


def test_is_steady_needs_a_window_without_improvement() -> None:
    assert not is_steady([5, 4, 3, 2, 1, 0.5], window=3, tol=0.02)
    assert is_steady([5, 4, 1, 1.01, 1.0, 1.02], window=3, tol=0.02)
    assert not is_steady([1, 1, 1], window=3, tol=0.02)  # nothing to compare with yet


def test_warm_up_runs_until_tier_up_is_over() -> None:
    # 5% faster on every inference (caches, tier-up) until a floor of 0.25 ms at i = 28
    t = FakeTarget(lambda i: max(250_000, int(1_000_000 * 0.95 ** i)))
    s = MeasureSettings(warmup_s=0.001, warmup_runs=2, warmup_max_s=10.0, steady_window=5,
                        steady_tol=0.02, batch_s=0.001)
    wu = warm_up(t.run, s, first_s=0.001, clock=t.clock)
    assert wu.steady and wu.runs > 28 + 5
    assert wu.estimate_s == 0.00025


def test_warm_up_stops_at_its_cap_and_says_so() -> None:
    # keeps getting faster (by 1 ns per inference) forever: never steady with tol 0
    t = FakeTarget(lambda i: 1_000_000 - i)
    s = MeasureSettings(warmup_s=0.0, warmup_runs=1, warmup_max_s=0.05, batch_s=0.0,
                        steady_tol=0.0)
    wu = warm_up(t.run, s, first_s=0.001, clock=t.clock)
    assert not wu.steady
    assert 0.05 <= wu.elapsed_s < 0.052


def test_calibration_makes_samples_last_the_target_time() -> None:
    t = FakeTarget(lambda i: 20_000)  # 20 µs per inference
    s = MeasureSettings(warmup_s=0.001, sample_s=0.01, samples=7, rounds=1)
    timing = time_steady(t.run, s, first_s=20e-6, clock=t.clock)
    assert timing.inner == 500  # 10 ms / 20 µs
    assert timing.samples_s == [20e-6] * 7
    assert timing.steady
    assert t.i == 1 * 0 + timing.warmup_runs + 500 * 7  # every inference accounted for


def test_slow_inference_gets_one_per_sample() -> None:
    t = FakeTarget(lambda i: 30_000_000)  # 30 ms: longer than a sample
    s = MeasureSettings(warmup_s=0.0, warmup_runs=2, sample_s=0.01, samples=3)
    timing = time_steady(t.run, s, first_s=0.03, clock=t.clock)
    assert timing.inner == 1 and timing.samples_s == [0.03] * 3
    assert timing.warmup_runs == s.steady_window + 1  # steady needs a window after a best


def test_clock_setting_names_a_clock() -> None:
    import time

    import pytest

    from harness.worker.measure import clock_of

    assert clock_of(MeasureSettings(clock="cpu")) is time.thread_time_ns
    assert clock_of(MeasureSettings()) is time.perf_counter_ns
    with pytest.raises(ValueError, match="unknown clock"):
        clock_of(MeasureSettings(clock="sundial"))

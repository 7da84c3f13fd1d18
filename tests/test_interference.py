"""The host-interference probe: figures from known slice times, and a real short probe."""

from __future__ import annotations

import os

import pytest

from harness.probes.interference import probe_interference, summarize_slices


def test_bursts_are_counted_in_fraction_factor_and_length() -> None:
    times = [0.005] * 80 + [0.008] * 6 + [0.005] * 10 + [0.008] * 4
    got = summarize_slices(times)
    assert got.slices == 100 and got.slice_s == pytest.approx(0.005)
    assert got.slowed_fraction == pytest.approx(0.10)
    assert got.slowed_factor == pytest.approx(1.6)
    assert got.longest_burst_s == pytest.approx(6 * 0.005)
    assert "10% of a 100-slice probe ran 1.60x slower" in got.describe()


def test_steady_slices_show_no_interference() -> None:
    got = summarize_slices([0.005, 0.0051, 0.00505, 0.0049] * 25)
    assert got.slowed_fraction == 0.0 and got.slowed_factor == 1.0
    assert got.longest_burst_s == 0.0 and "none seen" in got.describe()


def test_probe_runs_on_the_given_cpu_and_leaves_this_threads_affinity() -> None:
    before = os.sched_getaffinity(0)
    got = probe_interference(0.1, slice_s=0.002, cpus=[min(before)])
    assert os.sched_getaffinity(0) == before
    assert got.slices >= 10 and 0.0005 < got.slice_s < 0.02
    assert 0.0 <= got.slowed_fraction <= 1.0

from __future__ import annotations

import numpy as np

from harness.plugins.verify import compare
from harness.plugins.workload import Tolerance


def test_within_tolerance_ok() -> None:
    e = np.ones((3, 4), np.float32)
    v = compare({"y": e + 1e-7}, {"y": e}, Tolerance(0, 1e-6))
    assert v.ok and v.max_abs_err < 1e-6


def test_reports_worst_index() -> None:
    e = np.zeros((3, 4), np.float32)
    a = e.copy()
    a[1, 2], a[2, 3] = 0.5, 2.0
    v = compare({"y": a}, {"y": e}, Tolerance(0, 0.1))
    assert not v.ok and v.index == (2, 3) and v.max_abs_err == 2.0 and v.tensor == "y"


def test_nan_is_a_failure() -> None:
    e = np.zeros(5, np.float32)
    a = e.copy()
    a[3] = np.nan
    v = compare({"y": a}, {"y": e}, Tolerance(1, 1))
    assert not v.ok and v.index == (3,)


def test_missing_and_misshaped_outputs() -> None:
    e = np.zeros(5, np.float32)
    assert not compare({}, {"y": e}, Tolerance(0, 0)).ok
    assert not compare({"y": np.zeros(4, np.float32)}, {"y": e}, Tolerance(0, 0)).ok

"""Output verification against the NumPy reference: correct before fast.

A cell whose outputs fall outside the workload's documented tolerance is `invalid` and its
timings are never reported as results.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from harness.plugins.workload import Tolerance


@dataclass(frozen=True)
class Verdict:
    ok: bool
    max_abs_err: float
    tensor: str = ""
    index: tuple[int, ...] = ()
    message: str = ""


def compare(actual: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray],
            tol: Tolerance) -> Verdict:
    """Elementwise |a - e| <= atol + rtol*|e| for every expected tensor.

    On failure, names the tensor and the index of the worst violation (NaNs count as
    violations); `max_abs_err` is the largest absolute error over all tensors.
    """
    worst = 0.0
    for name, exp in expected.items():
        if name not in actual:
            return Verdict(False, float("inf"), name, (), f"output {name} was not produced")
        act = actual[name]
        if act.shape != exp.shape:
            return Verdict(False, float("inf"), name, (),
                           f"output {name} has shape {act.shape}, expected {exp.shape}")
        a64, e64 = act.astype(np.float64), exp.astype(np.float64)
        err = np.abs(a64 - e64)
        bad_nan = np.isnan(a64) != np.isnan(e64)
        excess = np.where(bad_nan, np.inf, err - (tol.atol + tol.rtol * np.abs(e64)))
        excess = np.nan_to_num(excess, nan=0.0, posinf=np.inf)
        finite_err = np.where(np.isnan(err), 0.0, err)
        worst = max(worst, float(finite_err.max(initial=0.0)))
        if (excess > 0).any():
            flat = int(np.argmax(excess))
            idx = tuple(int(i) for i in np.unravel_index(flat, exp.shape))
            return Verdict(False, max(worst, float(err.flat[flat]) if not bad_nan.flat[flat]
                                      else float("inf")), name, idx,
                           f"{name}{list(idx)} = {act.flat[flat]!r}, expected {exp.flat[flat]!r} "
                           f"(tolerance atol={tol.atol:g}, rtol={tol.rtol:g})")
    return Verdict(True, worst)

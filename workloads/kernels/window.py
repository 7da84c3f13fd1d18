"""Shared geometry of NHWC sliding-window kernels (depthwise conv, pooling).

Output size, the range of output positions whose whole window lies inside the input
(the "interior", where kernels need no bounds checks), and NumPy helpers that view the
padded input as windows for the references.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.errors import ShapeError


@dataclass(frozen=True)
class Axis:
    """One spatial axis: input size, window size, stride, padding (both sides)."""

    size: int
    window: int
    stride: int
    pad: int

    @property
    def out(self) -> int:
        return (self.size + 2 * self.pad - self.window) // self.stride + 1

    def interior(self) -> tuple[int, int]:
        """Output positions [lo, hi) whose window lies inside the input (lo may be >= hi)."""
        lo = -(-self.pad // self.stride)  # ceil(pad / stride)
        hi = (self.size - self.window + self.pad) // self.stride + 1
        return min(lo, self.out), max(min(hi, self.out), 0)

    def check(self, name: str) -> None:
        if self.size + 2 * self.pad < self.window:
            raise ShapeError(f"{name}: a {self.window}-wide window does not fit {self.size} "
                             f"inputs padded by {self.pad} on each side")


def windows(x: np.ndarray, ay: Axis, ax: Axis, fill: float) -> np.ndarray:
    """x[h,w,c] padded with `fill`, as windows [oh, ow, ky, kx, c] (a strided view)."""
    xp = np.pad(x, ((ay.pad, ay.pad), (ax.pad, ax.pad), (0, 0)), constant_values=fill)
    v = np.lib.stride_tricks.sliding_window_view(xp, (ay.window, ax.window), axis=(0, 1))
    # sliding_window_view puts the window axes last: [oh', ow', c, ky, kx]
    v = v[::ay.stride, ::ax.stride][:ay.out, :ax.out]
    return np.moveaxis(v, 2, 4)

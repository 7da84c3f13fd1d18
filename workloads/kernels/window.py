"""Shared geometry of NHWC sliding-window kernels (conv2d, depthwise conv, pooling).

Output size, the range of output positions whose whole window lies inside the input
(the "interior", where kernels need no bounds checks), NumPy helpers that view the
padded input as windows for the references, and the declared spatial parameters
(`window_params`) the kernels share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.errors import ShapeError
from harness.plugins.params import Param


@dataclass(frozen=True)
class WindowParams:
    """The spatial parameters of a windowed kernel, split where kernels declare their
    channel counts in between: `size` is (h, w), `window` is ([kh, kw,] stride, pad)."""

    size: tuple[Param, ...]
    window: tuple[Param, ...]


def window_params(*, h: int, w: int, stride: int, pad: int,
                  kernel: tuple[int, int] | None = None, kernel_doc: str = "kernel",
                  pad_doc: str = "zero padding on every side") -> WindowParams:
    """Declare h, w, [kh, kw,] stride, pad with these defaults; `kernel` (kh, kw) is None
    for kernels with a fixed window, `kernel_doc` names it in the kh/kw help texts."""
    size = (Param("h", "int", h, "input height", minimum=1),
            Param("w", "int", w, "input width", minimum=1))
    window: tuple[Param, ...] = ()
    if kernel is not None:
        window = (Param("kh", "int", kernel[0], f"{kernel_doc} height", minimum=1),
                  Param("kw", "int", kernel[1], f"{kernel_doc} width", minimum=1))
    window += (Param("stride", "int", stride, "stride (both axes)", minimum=1),
               Param("pad", "int", pad, pad_doc, minimum=0))
    return WindowParams(size, window)


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

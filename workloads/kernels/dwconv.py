"""Depthwise 3x3 convolution, NHWC (batch 1): y[oy,ox,c] = bias[c] +
sum over ky,kx of x[oy*s-p+ky, ox*s-p+kx, c] * w[ky,kx,c], then optionally ReLU.

Weights are [3,3,c] (channels innermost, like the input), so for one output pixel each
tap is a contiguous run of channels in both x and w: the channel loop is the vector loop.
Output pixels whose 3x3 window lies inside the input (the interior, known at codegen
time) take a branch-free path whose nine taps are constant load offsets from one base
address; border pixels test each tap's validity (zero padding). The SIMD variant does
four channels per step with a scalar tail for c mod 4.

Tolerance: each output is a 10-term f32 sum (bias + 9 products) of O(1) values; its
rounding error is below 10 * 2^-24 * sum|terms| < 1e-5 for the generated data, so
rtol = 1e-5, atol = 1e-5 against a float64 reference. A wrong tap errs by O(0.1) or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, Expr, FunctionBuilder, Kernel, Var, i32, op, simd
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features
from workloads.kernels.window import Axis, window_params, windows

K = 3


def lt_u(a: Expr, bound: int) -> Expr:
    """0 <= a < bound as one unsigned compare."""
    return op("i32.lt_u", a, i32(bound), ty="i32")


class DwConvKernel(Kernel):
    def __init__(self, h: int, w: int, c: int, stride: int, pad: int, relu: bool,
                 isa: str) -> None:
        self.h, self.w, self.c, self.relu, self.isa = h, w, c, relu, isa
        self.ay, self.ax = Axis(h, K, stride, pad), Axis(w, K, stride, pad)
        self.name = f"dwconv3x3_{h}x{w}x{c}_s{stride}p{pad}{'_relu' if relu else ''}_{isa}"
        self.buffers = (BufferParam("x", "r"), BufferParam("w", "r"), BufferParam("bias", "r"),
                        BufferParam("y", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        ay, ax, c = self.ay, self.ax, self.c
        x, y = bufs["x"], bufs["y"]
        oy, ox = fb.local("oy", "i32"), fb.local("ox", "i32")
        ib, ob = fb.pointer("ib"), fb.pointer("ob")
        inside = fb.local("inside", "i32")
        vy = [fb.local(f"vy{k}", "i32") for k in range(K)]
        vx = [fb.local(f"vx{k}", "i32") for k in range(K)]
        (ylo, yhi), (xlo, xhi) = ay.interior(), ax.interior()
        has_interior = ylo < yhi and xlo < xhi
        has_border = not (ylo == 0 and yhi == ay.out and xlo == 0 and xhi == ax.out)
        with fb.for_range(oy, 0, ay.out):
            iy = oy * ay.stride - ay.pad
            for k in range(K):
                fb.set(vy[k], lt_u(iy + k, ay.size))
            with fb.for_range(ox, 0, ax.out):
                ix = ox * ax.stride - ax.pad
                # base address of tap (0, 0); i32 arithmetic wraps like the kernel's own math
                fb.set(ib, x.ptr + (iy * ax.size + ix) * (4 * c))
                fb.set(ob, y.addr((oy * ax.out + ox) * c))
                if has_interior:
                    fb.set(inside, (oy >= ylo) & (oy < yhi) & (ox >= xlo) & (ox < xhi))
                    with fb.if_(inside):
                        self._channels(fb, bufs, None)
                if has_border:
                    for k in range(K):
                        fb.set(vx[k], lt_u(ix + k, ax.size))
                    cond = op("i32.eqz", inside, ty="i32") if has_interior else None
                    if cond is None:
                        self._channels(fb, bufs, (vy, vx))
                    else:
                        with fb.if_(cond):
                            self._channels(fb, bufs, (vy, vx))

    def _channels(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer],
                  valid: tuple[list[Var], list[Var]] | None) -> None:
        """All channels of the output pixel at `ob` (input window base `ib`)."""
        c = self.c
        jb = fb.local("jb", "i32")
        cv = c // simd.LANES * simd.LANES if self.isa == "simd" else 0
        if cv:
            with fb.for_range(jb, 0, 4 * cv, simd.VBYTES):
                self._step(fb, bufs, valid, jb, "v128")
        if cv < c:
            with fb.for_range(jb, 4 * cv, 4 * c, 4):
                self._step(fb, bufs, valid, jb, "f32")

    def _step(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer],
              valid: tuple[list[Var], list[Var]] | None, jb: Var, ty: str) -> None:
        x, wt, bias, y = bufs["x"], bufs["w"], bufs["bias"], bufs["y"]
        c, row = self.c, 4 * self.c * self.ax.size
        ib, ob = fb.pointer("ib"), fb.pointer("ob")
        acc = fb.local("vacc" if ty == "v128" else "acc", ty)
        vec = ty == "v128"
        fb.set(acc, bias.load_at(bias.ptr + jb, ty))
        for ky in range(K):
            for kx in range(K):
                tap = ky * row + kx * 4 * c
                wv = wt.load_at(wt.ptr + jb, ty, (ky * K + kx) * 4 * c)
                if valid is None:  # interior: the tap is a constant offset
                    xv = x.load_at(ib + jb, ty, tap)
                    fb.set(acc, simd.madd(acc, xv, wv) if vec else acc + xv * wv)
                else:
                    xv = x.load_at((ib + tap) + jb, ty)
                    with fb.if_(valid[0][ky] & valid[1][kx]):
                        fb.set(acc, simd.madd(acc, xv, wv) if vec else acc + xv * wv)
        if self.relu:
            fb.set(acc, simd.relu(acc) if vec else acc.max(0.0))
        y.store_at(ob + jb, acc, ty)


GEOMETRY = window_params(h=25, w=5, stride=1, pad=1)


class DwConvWorkload(Workload):
    NAME = "dwconv"
    DESCRIPTION = "depthwise 3x3 convolution, NHWC, stride and zero padding, bias, optional ReLU"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        *GEOMETRY.size,
        Param("c", "int", 64, "channels", minimum=1),
        *GEOMETRY.window,
        Param("relu", "bool", True, "apply ReLU after the bias"),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    def axes(self) -> tuple[Axis, Axis]:
        p = self.params
        return Axis(p["h"], K, p["stride"], p["pad"]), Axis(p["w"], K, p["stride"], p["pad"])

    def validate(self) -> None:
        ay, ax = self.axes()
        ay.check(f"{self.spec} height")
        ax.check(f"{self.spec} width")

    def build_tensors(self) -> tuple[Tensor, ...]:
        p = self.params
        ay, ax = self.axes()
        return (Tensor("x", "input", (p["h"], p["w"], p["c"])),
                Tensor("w", "weight", (K, K, p["c"])), Tensor("bias", "weight", (p["c"],)),
                Tensor("y", "output", (ay.out, ax.out, p["c"])))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        p = self.params
        kern = DwConvKernel(p["h"], p["w"], p["c"], p["stride"], p["pad"], p["relu"], p["isa"])
        return (Dispatch("dwconv", kern, tuple((n, n) for n in ("x", "w", "bias", "y"))),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        ay, ax = self.axes()
        win = windows(data["x"].astype(np.float64), ay, ax, 0.0)
        out = np.einsum("abijc,ijc->abc", win, data["w"].astype(np.float64)) + data["bias"]
        if self.params["relu"]:
            out = np.maximum(out, 0.0)
        return {"y": out.astype(np.float32)}

    def tolerance(self) -> Tolerance:
        return Tolerance(rtol=1e-5, atol=1e-5)

    def flops(self) -> int:
        ay, ax = self.axes()
        return 2 * K * K * ay.out * ax.out * self.params["c"]

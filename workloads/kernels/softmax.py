"""Softmax over the rows of x[rows, cols], numerically stable: y = e^(x - max) / sum.

Three passes per row: the row max (pseudo-max: a NaN anywhere in a row still makes the
whole row NaN, through exp and the sum); y = exp(x - max) with a running sum; y *= 1/sum.
exp is harness.codegen.mathlib's (relative error < 8.1e-8; inputs x - max <= 0, so
large negative inputs underflow gracefully to 0). The SIMD variant runs each pass on
f32x4 (four partial maxima and sums) with a scalar tail for cols mod 4.

Tolerance: the reference rounds x - max to f32 like any f32 softmax (that rounding alone
moves e^(x-max) by up to |x - max| * 2^-24 relative, 3e-6 at x - max = -48, so it is not
charged to the kernel) and computes the rest in float64. Every output is e_i / S. exp errs by < 2u (u = 2^-24); the f32 sum S of
cols positive terms errs by at most (cols - 1)u relative (the classic bound for
recursive summation of same-sign terms, which also covers 4-lane partial sums); the
reciprocal and the multiply add 2u. So rtol = 4e-7 + 6e-8 * cols bounds the error
rigorously (rtol 2e-3 at the 32000-wide LM-head row, far tighter in practice);
atol = 1e-37 covers outputs that underflow to subnormals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, f32, mathlib, op, simd
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.clang import TOOLCHAIN_PARAM, ClangKernel
from workloads.kernels.isa import ISA_PARAM, isa_features


class SoftmaxKernel(Kernel):
    def __init__(self, rows: int, cols: int, isa: str) -> None:
        self.rows, self.cols, self.isa = rows, cols, isa
        self.name = f"softmax_{rows}x{cols}_{isa}"
        self.buffers = (BufferParam("x", "r"), BufferParam("y", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, y = bufs["x"], bufs["y"]
        cols = self.cols
        r, j = fb.local("r", "i32"), fb.local("j", "i32")
        base = fb.local("base", "i32")  # element index of the row start
        mx, total = fb.local("mx", "f32"), fb.local("total", "f32")
        vm, vs, tmp = fb.local("vm", "v128"), fb.local("vs", "v128"), fb.local("tmp", "v128")
        ve = fb.local("ve", "v128")
        vec = self.isa == "simd"

        def pass_(vector: Callable[[], None], scalar: Callable[[], None]) -> None:
            if vec:
                simd.for_lanes(fb, j, cols, vector, scalar)
            else:
                with fb.for_range(j, 0, cols):
                    scalar()

        with fb.for_range(r, 0, self.rows):
            fb.set(base, r * cols)
            # 1. row max
            fb.set(mx, f32(float("-inf")))
            if vec:
                fb.set(vm, simd.fconst(float("-inf")))
            xs = fb.local("xs", "f32")

            def max_scalar() -> None:  # the select twin of pmax: xs < mx ? mx : xs
                fb.set(xs, x.load(base + j))
                fb.set(mx, op("select", mx, xs, xs < mx, ty="f32"))

            pass_(lambda: fb.set(vm, simd.pmax(x.load(base + j, "v128"), vm)), max_scalar)
            if vec:
                fb.set(mx, mx.max(simd.hmax(fb, vm, tmp)))
                fb.set(vm, simd.splat(mx))
            # 2. y = exp(x - max), summed
            fb.set(total, f32(0.0))
            if vec:
                fb.set(vs, simd.zero())

            def exp_vec() -> None:
                fb.set(ve, mathlib.exp(fb, simd.sub(x.load(base + j, "v128"), vm)))
                y.store(base + j, ve, "v128")
                fb.set(vs, simd.add(vs, ve))

            def exp_scalar() -> None:
                e = fb.local("e", "f32")
                fb.set(e, mathlib.exp(fb, x.load(base + j) - mx))
                y.store(base + j, e)
                fb.set(total, total + e)

            pass_(exp_vec, exp_scalar)
            if vec:
                fb.set(total, simd.hsum(fb, vs, tmp) + total)
            # 3. scale by 1/sum
            fb.set(total, f32(1.0) / total)
            if vec:
                fb.set(vs, simd.splat(total))
            pass_(lambda: y.store(base + j, simd.mul(y.load(base + j, "v128"), vs), "v128"),
                  lambda: y.store(base + j, y.load(base + j) * total))


def softmax_reference(x: np.ndarray) -> np.ndarray:
    # x - max rounded to f32 (as every f32 softmax, NumPy's included, computes it), the
    # rest in float64
    shifted = (x - x.max(axis=-1, keepdims=True)).astype(np.float64)
    e = np.exp(shifted)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


def softmax_tolerance(cols: int) -> Tolerance:
    return Tolerance(rtol=4e-7 + 6e-8 * cols, atol=1e-37)


class SoftmaxWorkload(Workload):
    NAME = "softmax"
    DESCRIPTION = "numerically stable softmax over each row of x[rows, cols]"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("rows", "int", 16, "rows", minimum=1),
        Param("cols", "int", 1000, "elements per row (the softmax axis)", minimum=1),
        ISA_PARAM,
        TOOLCHAIN_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""
    TWIN_PARAM = "toolchain"

    def build_tensors(self) -> tuple[Tensor, ...]:
        shape = (self.params["rows"], self.params["cols"])
        return (Tensor("x", "input", shape), Tensor("y", "output", shape))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        rows, cols, isa = self.params["rows"], self.params["cols"], self.params["isa"]
        kern: Kernel
        if self.params["toolchain"] == "clang":
            kern = ClangKernel("softmax", f"softmax_{rows}x{cols}", (
                BufferParam("x", "r"), BufferParam("y", "w")), {"ROWS": rows, "COLS": cols},
                isa)
        else:
            kern = SoftmaxKernel(rows, cols, isa)
        return (Dispatch("softmax", kern, (("x", "x"), ("y", "y"))),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        # logits with a wide spread, so exp sees large negative arguments too
        return (rng.standard_normal(t.shape) * 8.0).astype(t.dtype)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": softmax_reference(data["x"])}

    def tolerance(self) -> Tolerance:
        return softmax_tolerance(self.params["cols"])

    def flops(self) -> int:
        # max, subtract, exp (counted as one), add, multiply: 5 per element
        return 5 * self.params["rows"] * self.params["cols"]

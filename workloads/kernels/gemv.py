"""GEMV: y[m] = W[m,k] @ x[k], W row-major (one output per contiguous row of W).

The weight layout is the one llama2.c's classifier uses (vocab rows of dim): each output
is a dot product over a contiguous row, so W streams from memory front to back exactly
once — the access pattern that decides the speed of the memory-bound LM-head shape
(32000x288, ~37 MB of weights).

Scalar: one row at a time, one f32 accumulator, pointer bumping.
SIMD: four rows at a time, four f32x4 accumulators sharing each v128 load of x (so x
is loaded once per four rows), k unrolled by 2 vectors; a horizontal sum per row, then a
scalar tail for k mod 8 and for the last m mod 4 rows.

Tolerance: like GEMM's — the reference is computed in float64 and rounded; a k-term f32
dot product of N(0,1) x and 1/sqrt(k)-scaled weights errs well under k * 1e-6, so
atol = 1e-6 * k, rtol = 1e-5. A wrong index or missed term errs by O(1/sqrt(k)) or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, Var, f32, simd
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features

ROWS = 4     # rows per SIMD block
UNROLL = 2   # v128 loads of each row per inner iteration


class GemvKernel(Kernel):
    def __init__(self, m: int, k: int, isa: str) -> None:
        self.m, self.k, self.isa = m, k, isa
        self.name = f"gemv_{m}x{k}_{isa}"
        self.buffers = (BufferParam("w", "r"), BufferParam("x", "r"), BufferParam("y", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        if self.isa == "simd":
            self._emit_simd(fb, bufs)
        else:
            i = fb.local("i", "i32")
            with fb.for_range(i, 0, self.m):
                self._row_scalar(fb, bufs, i, 0)

    def _row_scalar(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer], i: Var,
                    p0: int, acc0: Var | None = None) -> None:
        """y[i] = (acc0 or 0) + sum over p in [p0, k) of W[i,p] * x[p]."""
        w, x, y = bufs["w"], bufs["x"], bufs["y"]
        p, pw = fb.local("p", "i32"), fb.pointer("pw")
        acc = fb.local("acc", "f32")
        fb.set(acc, acc0 if acc0 is not None else f32(0.0))
        fb.set(pw, w.addr(i * self.k + p0))
        with fb.for_range(p, p0, self.k):
            fb.set(acc, acc + w.load_at(pw) * x.load(p))
            fb.set(pw, pw + 4)
        y.store(i, acc)

    def _emit_simd(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        m, k = self.m, self.k
        w, x, y = bufs["w"], bufs["x"], bufs["y"]
        step = simd.LANES * UNROLL
        kv = k // step * step
        i, p = fb.local("i", "i32"), fb.local("p", "i32")
        pw, px = fb.pointer("pw"), fb.pointer("px")
        xv = [fb.local(f"xv{u}", "v128") for u in range(UNROLL)]
        accs = [fb.local(f"acc{r}", "v128") for r in range(ROWS)]
        tmp = fb.local("tmp", "v128")
        sums = [fb.local(f"s{r}", "f32") for r in range(ROWS)]
        row_bytes = 4 * k
        with fb.for_range(i, 0, m // ROWS * ROWS, ROWS):
            for a in accs:
                fb.set(a, simd.zero())
            fb.set(pw, w.addr(i * k))
            fb.set(px, x.ptr)
            with fb.for_range(p, 0, kv, step):
                for u in range(UNROLL):
                    fb.set(xv[u], x.load_at(px, "v128", 16 * u))
                for r, a in enumerate(accs):
                    for u in range(UNROLL):
                        fb.set(a, simd.madd(a, w.load_at(pw, "v128", r * row_bytes + 16 * u),
                                            xv[u]))
                fb.set(pw, pw + 4 * step)
                fb.set(px, px + 4 * step)
            for r, a in enumerate(accs):
                fb.set(sums[r], simd.hsum(fb, a, tmp))
            if kv < k:  # scalar tail of each of the four rows
                with fb.for_range(p, kv, k):
                    xs = fb.local("xs", "f32")
                    fb.set(xs, x.load(p))
                    for r in range(ROWS):
                        fb.set(sums[r], sums[r] + w.load(i * k + p, offset=r * row_bytes) * xs)
            for r in range(ROWS):
                y.store(i, sums[r], offset=4 * r)
        if m % ROWS:  # last rows: one vector accumulator each
            with fb.for_range(i, m // ROWS * ROWS, m):
                a = accs[0]
                fb.set(a, simd.zero())
                fb.set(pw, w.addr(i * k))
                with fb.for_range(p, 0, k // simd.LANES * simd.LANES, simd.LANES):
                    fb.set(a, simd.madd(a, w.load_at(pw, "v128"), x.load(p, "v128")))
                    fb.set(pw, pw + 16)
                fb.set(sums[0], simd.hsum(fb, a, tmp))
                self._row_scalar(fb, bufs, i, k // simd.LANES * simd.LANES, sums[0])


class GemvWorkload(Workload):
    NAME = "gemv"
    DESCRIPTION = "y = W @ x, W a row-major [m,k] weight, x an input [k]"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("m", "int", 1024, "outputs (rows of W)", minimum=1),
        Param("k", "int", 288, "inputs (columns of W)", minimum=1),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    def build_tensors(self) -> tuple[Tensor, ...]:
        m, k = self.params["m"], self.params["k"]
        return (Tensor("x", "input", (k,)), Tensor("w", "weight", (m, k)),
                Tensor("y", "output", (m,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        kern = GemvKernel(self.params["m"], self.params["k"], self.params["isa"])
        return (Dispatch("gemv", kern, (("w", "w"), ("x", "x"), ("y", "y"))),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        scale = 1.0 / np.sqrt(self.params["k"]) if t.name == "w" else 1.0
        return (rng.standard_normal(t.shape) * scale).astype(t.dtype)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": (data["w"].astype(np.float64) @ data["x"].astype(np.float64))
                .astype(np.float32)}

    def tolerance(self) -> Tolerance:
        return Tolerance(rtol=1e-5, atol=1e-6 * self.params["k"])

    def flops(self) -> int:
        return 2 * self.params["m"] * self.params["k"]

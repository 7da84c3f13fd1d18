"""Row normalisations of x[rows, d]: `layernorm` and `rmsnorm` (eps = 1e-5).

layernorm: y = (x - mean) / sqrt(var + eps) * gamma + beta, var the biased variance,
computed in two passes (mean, then sum of squared deviations: no cancellation).
rmsnorm (llama2.c): y = x / sqrt(mean(x^2) + eps) * weight.

Each pass runs on f32x4 in the SIMD variant (four partial sums, one horizontal sum per
row) with a scalar tail for d mod 4; 1/sqrt is mathlib.rsqrt (sqrt and divide, each
correctly rounded).

Tolerance: the sums of d terms err by at most (d - 1) * 2^-24 relative (same-sign terms
for the squares; the mean's error is of that order times max|x|), which moves the
scale factor 1/sqrt(.) by half that; outputs are O(|gamma| * |x - mean| / std) ~ 4 for
the generated N(0,1) data. So rtol = 1e-6 + 6e-8 * d and atol = 4 * (1e-6 + 6e-8 * d)
against a float64 reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import (
    Buffer,
    BufferParam,
    Expr,
    FunctionBuilder,
    Kernel,
    Var,
    f32,
    mathlib,
    simd,
)
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.clang import TOOLCHAIN_PARAM, ClangKernel
from workloads.kernels.isa import ISA_PARAM, isa_features

EPS = 1e-5


class NormKernel(Kernel):
    """`kind` "layer" (buffers x, gamma, beta, y) or "rms" (buffers x, weight, y)."""

    def __init__(self, kind: str, rows: int, d: int, isa: str) -> None:
        self.kind, self.rows, self.d, self.isa = kind, rows, d, isa
        self.name = f"{kind}norm_{rows}x{d}_{isa}"
        names = ("x", "gamma", "beta") if kind == "layer" else ("x", "weight")
        self.buffers = (*(BufferParam(n, "r") for n in names), BufferParam("y", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, y = bufs["x"], bufs["y"]
        d, vec = self.d, self.isa == "simd"
        r, j = fb.local("r", "i32"), fb.local("j", "i32")
        base = fb.local("base", "i32")
        s, mean, inv = fb.local("s", "f32"), fb.local("mean", "f32"), fb.local("inv", "f32")
        vs, vt, tmp = fb.local("vs", "v128"), fb.local("vt", "v128"), fb.local("tmp", "v128")
        vmean, vinv = fb.local("vmean", "v128"), fb.local("vinv", "v128")

        def pass_(vector: Callable[[], None], scalar: Callable[[], None]) -> None:
            if vec:
                simd.for_lanes(fb, j, d, vector, scalar)
            else:
                with fb.for_range(j, 0, d):
                    scalar()

        def reduce(vterm: Callable[[], Expr], sterm: Callable[[], Expr]) -> None:
            """s = sum over the row of term(j), vector lanes then tail."""
            fb.set(s, f32(0.0))
            if vec:
                fb.set(vs, simd.zero())
            pass_(lambda: fb.set(vs, simd.add(vs, vterm())), lambda: fb.set(s, s + sterm()))
            if vec:
                fb.set(s, simd.hsum(fb, vs, tmp) + s)

        with fb.for_range(r, 0, self.rows):
            fb.set(base, r * d)
            if self.kind == "layer":
                reduce(lambda: x.load(base + j, "v128"), lambda: x.load(base + j))
                fb.set(mean, s * (1.0 / d))
                if vec:
                    fb.set(vmean, simd.splat(mean))

                def vsq() -> Expr:
                    fb.set(vt, simd.sub(x.load(base + j, "v128"), vmean))
                    return simd.mul(vt, vt)

                def ssq() -> Expr:
                    t = fb.local("t", "f32")
                    fb.set(t, x.load(base + j) - mean)
                    return t * t
                reduce(vsq, ssq)
            else:
                def vsq() -> Expr:
                    fb.set(vt, x.load(base + j, "v128"))
                    return simd.mul(vt, vt)

                def ssq() -> Expr:
                    t = fb.local("t", "f32")
                    fb.set(t, x.load(base + j))
                    return t * t
                reduce(vsq, ssq)
            fb.set(inv, mathlib.rsqrt(s * (1.0 / d) + EPS))
            if vec:
                fb.set(vinv, simd.splat(inv))
            pass_(lambda: y.store(base + j, self._out(bufs, base, j, vmean, vinv, "v128"),
                                  "v128"),
                  lambda: y.store(base + j, self._out(bufs, base, j, mean, inv, "f32")))

    def _out(self, bufs: Mapping[str, Buffer], base: Var, j: Var, mean: Var, inv: Var,
             ty: str) -> Expr:
        x = bufs["x"]
        xv = x.load(base + j, ty)
        if ty == "v128":
            if self.kind == "layer":
                t = simd.mul(simd.mul(simd.sub(xv, mean), inv), bufs["gamma"].load(j, ty))
                return simd.add(t, bufs["beta"].load(j, ty))
            return simd.mul(simd.mul(xv, inv), bufs["weight"].load(j, ty))
        if self.kind == "layer":
            return ((xv - mean) * inv) * bufs["gamma"].load(j) + bufs["beta"].load(j)
        return (xv * inv) * bufs["weight"].load(j)


def norm_tolerance(d: int) -> Tolerance:
    rel = 1e-6 + 6e-8 * d
    return Tolerance(rtol=rel, atol=4 * rel)


class _NormWorkload(Workload):
    KIND = ""
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("rows", "int", 16, "rows (tokens)", minimum=1),
        Param("d", "int", 288, "features per row (normalised axis)", minimum=1),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""
    WEIGHTS: ClassVar[tuple[str, ...]] = ()

    def build_tensors(self) -> tuple[Tensor, ...]:
        rows, d = self.params["rows"], self.params["d"]
        return (Tensor("x", "input", (rows, d)),
                *(Tensor(n, "weight", (d,)) for n in self.WEIGHTS),
                Tensor("y", "output", (rows, d)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        kern = NormKernel(self.KIND, self.params["rows"], self.params["d"], self.params["isa"])
        names = ("x", *self.WEIGHTS, "y")
        return (Dispatch(f"{self.KIND}norm", kern, tuple((n, n) for n in names)),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        if t.name in ("gamma", "weight"):  # scales near 1, like trained norms
            return (1.0 + 0.1 * rng.standard_normal(t.shape)).astype(t.dtype)
        return super().generate_tensor(t, rng)

    def tolerance(self) -> Tolerance:
        return norm_tolerance(self.params["d"])


class LayerNormWorkload(_NormWorkload):
    NAME = "layernorm"
    DESCRIPTION = "y = (x - mean) / sqrt(var + 1e-5) * gamma + beta over each row of x[rows, d]"
    KIND = "layer"
    WEIGHTS = ("gamma", "beta")
    PARAMS: ClassVar[tuple[Param, ...]] = (*_NormWorkload.PARAMS, TOOLCHAIN_PARAM)
    TWIN_PARAM = "toolchain"

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        if self.params["toolchain"] != "clang":
            return super().build_dispatches()
        rows, d = self.params["rows"], self.params["d"]
        names = ("x", *self.WEIGHTS, "y")
        kern = ClangKernel("layernorm", f"layernorm_{rows}x{d}", (
            BufferParam("x", "r"), BufferParam("gamma", "r"), BufferParam("beta", "r"),
            BufferParam("y", "w")), {"ROWS": rows, "D": d}, self.params["isa"])
        return (Dispatch("layernorm", kern, tuple((n, n) for n in names)),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = data["x"].astype(np.float64)
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        y = (x - mean) / np.sqrt(var + EPS) * data["gamma"] + data["beta"]
        return {"y": y.astype(np.float32)}

    def flops(self) -> int:
        return 8 * self.params["rows"] * self.params["d"]


class RmsNormWorkload(_NormWorkload):
    NAME = "rmsnorm"
    DESCRIPTION = "y = x / sqrt(mean(x^2) + 1e-5) * weight over each row of x[rows, d]"
    KIND = "rms"
    WEIGHTS = ("weight",)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = data["x"].astype(np.float64)
        ms = (x * x).mean(axis=-1, keepdims=True)
        return {"y": (x / np.sqrt(ms + EPS) * data["weight"]).astype(np.float32)}

    def flops(self) -> int:
        return 4 * self.params["rows"] * self.params["d"]

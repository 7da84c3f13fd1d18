"""`silu-mul`: the SwiGLU gate of llama's FFN, h[i] = silu(g[i]) * u[i] over n elements,
silu(x) = x / (1 + e^-x) (harness.codegen.mathlib; one exp per element).

SIMD variant: f32x4 (the vector silu has the scalar's arithmetic, so both variants give
the same bits), scalar tail for n mod 4.

Tolerance: mathlib's silu errs by < 3e-7 relative for x > -88.7, the multiply adds one
rounding (6e-8): rtol = 4e-7 against a float64 reference. Below -88.7 silu returns -0
where the true value is under 1e-36 in magnitude: atol = 1e-30 covers it.
FLOPs: 5 per element (negate, exp counted as one, add, divide, multiply).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, mathlib, simd
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features

SILU_MUL_TOLERANCE = Tolerance(rtol=4e-7, atol=1e-30)
FLOPS_PER_ELEMENT = 5


class SiluMulKernel(Kernel):
    """Buffers g, u (r) and h (w), n elements each."""

    def __init__(self, n: int, isa: str) -> None:
        self.n, self.isa = n, isa
        self.name = f"silu_mul_{n}_{isa}"
        self.buffers = (BufferParam("g", "r"), BufferParam("u", "r"), BufferParam("h", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        g, u, h = bufs["g"], bufs["u"], bufs["h"]
        i = fb.local("i", "i32")
        gs, gv = fb.local("gs", "f32"), fb.local("gv", "v128")

        def scalar() -> None:
            fb.set(gs, g.load(i))
            fb.set(gs, mathlib.silu(fb, gs))
            h.store(i, gs * u.load(i))

        def vector() -> None:
            fb.set(gv, g.load(i, "v128"))
            fb.set(gv, mathlib.silu(fb, gv))
            h.store(i, simd.mul(gv, u.load(i, "v128")), "v128")

        if self.isa == "simd":
            simd.for_lanes(fb, i, self.n, vector, scalar)
        else:
            with fb.for_range(i, 0, self.n):
                scalar()


def silu_mul_reference(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    g64 = g.astype(np.float64)
    with np.errstate(over="ignore"):
        return (g64 / (1.0 + np.exp(-g64)) * u.astype(np.float64)).astype(np.float32)


class SiluMulWorkload(Workload):
    NAME = "silu-mul"
    DESCRIPTION = "h = silu(g) * u over n elements (llama's SwiGLU gate)"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("n", "int", 768, "number of elements", minimum=1), ISA_PARAM)
    TOLERANCE_DOC = __doc__ or ""

    def build_tensors(self) -> tuple[Tensor, ...]:
        n = self.params["n"]
        return (Tensor("g", "input", (n,)), Tensor("u", "input", (n,)),
                Tensor("h", "output", (n,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        kern = SiluMulKernel(self.params["n"], self.params["isa"])
        return (Dispatch("silu_mul", kern, (("g", "g"), ("u", "u"), ("h", "h"))),)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        scale = 4.0 if t.name == "g" else 1.0  # gate pre-activations spanning silu's bend
        return (rng.standard_normal(t.shape) * scale).astype(t.dtype)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"h": silu_mul_reference(data["g"], data["u"])}

    def tolerance(self) -> Tolerance:
        return SILU_MUL_TOLERANCE

    def flops(self) -> int:
        return FLOPS_PER_ELEMENT * self.params["n"]

"""RoPE (rotary position embedding, llama2.c's form) over x[rows, heads*head_dim].

Within each head, element pairs (2j, 2j+1) of the row for absolute position `pos` are
rotated by the angle pos * theta_j, theta_j = 10000^(-2j/head_dim):
    y[2j]   = x[2j] cos - x[2j+1] sin,     y[2j+1] = x[2j] sin + x[2j+1] cos.
The angles are not computed in wasm (it has no sin/cos): like Meta's `freqs_cis`, the
tables are a weight-like input per step, laid out so the rotation is one elementwise
formula: cos[r, 2j] = cos[r, 2j+1] = cos(pos_r theta_j); sin[r, 2j] = -sin(pos_r theta_j),
sin[r, 2j+1] = +sin(pos_r theta_j); then y[i] = x[i] cos[i] + x[i ^ 1] sin[i]
(tables indexed by the element's index within its head, shared by all heads).

SIMD variant: f32x4 over the head's elements (pairs never straddle a vector because
every vector starts at an even index), x[i ^ 1] by one `i8x16.shuffle` swapping lanes
(1,0,3,2); scalar tail for head_dim mod 4 (head_dim must be even).

Tolerance: two f32 products and one sum per output: error below
2^-23 * (|x[i] cos| + |x[i^1] sin|) <= 2^-23 * 2 max|x|; with N(0,1) inputs (|x| < 6)
rtol = 3e-7 and atol = 1.5e-6 against a float64 reference on the same f32 tables.
FLOPs: 3 per element (two multiplies, one add).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, simd
from harness.core.errors import ShapeError
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features

THETA = 10000.0


def rope_tables(positions: np.ndarray, head_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, signed sin) tables [len(positions), head_dim] in float32 (see module doc)."""
    if head_dim % 2:
        raise ShapeError(f"RoPE rotates pairs: head_dim must be even, got {head_dim}")
    j = np.arange(head_dim // 2, dtype=np.float64)
    freq = THETA ** (-2.0 * j / head_dim)
    ang = positions.astype(np.float64)[:, None] * freq[None, :]
    cos = np.repeat(np.cos(ang), 2, axis=1)
    sin = np.repeat(np.sin(ang), 2, axis=1)
    sin[:, 0::2] *= -1.0
    return cos.astype(np.float32), sin.astype(np.float32)


def rope_reference(x: np.ndarray, cos: np.ndarray, sin: np.ndarray, heads: int) -> np.ndarray:
    """y = x cos + swap_pairs(x) sin, in float64 from the f32 inputs and tables."""
    rows, dim = x.shape
    xh = x.astype(np.float64).reshape(rows, heads, dim // heads)
    swapped = xh.reshape(rows, heads, -1, 2)[..., ::-1].reshape(xh.shape)
    y = xh * cos.astype(np.float64)[:, None, :] + swapped * sin.astype(np.float64)[:, None, :]
    return y.reshape(rows, dim).astype(np.float32)


ROPE_TOLERANCE = Tolerance(rtol=3e-7, atol=1.5e-6)


class RopeKernel(Kernel):
    """Buffers x [rows, heads*head_dim], cos and sin [rows, head_dim] (r), y (w)."""

    def __init__(self, rows: int, heads: int, head_dim: int, isa: str) -> None:
        if head_dim % 2:
            raise ShapeError(f"RoPE rotates pairs: head_dim must be even, got {head_dim}")
        self.rows, self.heads, self.head_dim, self.isa = rows, heads, head_dim, isa
        self.name = f"rope_{rows}x{heads}x{head_dim}_{isa}"
        self.buffers = (BufferParam("x", "r"), BufferParam("cos", "r"), BufferParam("sin", "r"),
                        BufferParam("y", "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, cos, sin, y = bufs["x"], bufs["cos"], bufs["sin"], bufs["y"]
        hd = self.head_dim
        r, h, j = fb.local("r", "i32"), fb.local("h", "i32"), fb.local("j", "i32")
        xb, tb = fb.local("xb", "i32"), fb.local("tb", "i32")  # element index of head / table row
        xv = fb.local("xv", "v128")

        def scalar() -> None:
            y.store(xb + j, x.load(xb + j) * cos.load(tb + j) + x.load(xb + (j ^ 1)) * sin.load(tb + j))

        def vector() -> None:
            fb.set(xv, x.load(xb + j, "v128"))
            y.store(xb + j, simd.add(simd.mul(xv, cos.load(tb + j, "v128")),
                                     simd.mul(simd.shuffle32(xv, xv, (1, 0, 3, 2)),
                                              sin.load(tb + j, "v128"))), "v128")

        with fb.for_range(r, 0, self.rows):
            fb.set(tb, r * hd)
            with fb.for_range(h, 0, self.heads):
                fb.set(xb, (r * self.heads + h) * hd)
                if self.isa == "simd":
                    simd.for_lanes(fb, j, hd, vector, scalar)
                else:
                    with fb.for_range(j, 0, hd):
                        scalar()


class RopeWorkload(Workload):
    NAME = "rope"
    DESCRIPTION = "rotary position embedding of x[rows, heads*head_dim] (llama2.c pairs)"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("rows", "int", 16, "rows (tokens), at positions pos.. pos+rows-1", minimum=1),
        Param("heads", "int", 6, "heads per row", minimum=1),
        Param("pairs", "int", 24, "rotated pairs per head (head_dim = 2*pairs)", minimum=1),
        Param("pos", "int", 0, "position of the first row", minimum=0),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    @property
    def head_dim(self) -> int:
        return 2 * int(self.params["pairs"])

    def build_tensors(self) -> tuple[Tensor, ...]:
        rows, heads = self.params["rows"], self.params["heads"]
        return (Tensor("x", "input", (rows, heads * self.head_dim)),
                Tensor("cos", "weight", (rows, self.head_dim)),
                Tensor("sin", "weight", (rows, self.head_dim)),
                Tensor("y", "output", (rows, heads * self.head_dim)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        p = self.params
        kern = RopeKernel(p["rows"], p["heads"], self.head_dim, p["isa"])
        return (Dispatch("rope", kern, tuple((n, n) for n in ("x", "cos", "sin", "y"))),)

    def generate(self, seed: int) -> dict[str, np.ndarray]:
        data = super().generate(seed)
        pos = np.arange(self.params["rows"]) + self.params["pos"]
        data["cos"], data["sin"] = rope_tables(pos, self.head_dim)
        return data

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": rope_reference(data["x"], data["cos"], data["sin"], self.params["heads"])}

    def tolerance(self) -> Tolerance:
        return ROPE_TOLERANCE

    def flops(self) -> int:
        return 3 * self.params["rows"] * self.params["heads"] * self.head_dim

"""GEMM: C[m,n] = A[m,k] @ B[k,n] (+ bias[n]) (ReLU), row-major f32.

Scalar variant: the i-j-p loop with pointer bumping, one f32 accumulator per output.
Tolerance: the reference is computed in float64 and rounded; a k-term f32 dot product
has error well under k * 1e-6 for N(0,1) inputs and 1/sqrt(k)-scaled weights, so
atol = 1e-6 * k, rtol = 1e-5. A wrong index or missed term errs by O(1).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, f32
from harness.params import Param
from harness.workload import Dispatch, Tensor, Tolerance, Workload


class GemmKernel(Kernel):
    """Scalar GEMM with optional fused bias and ReLU."""

    def __init__(self, m: int, n: int, k: int, bias: bool = False, relu: bool = False) -> None:
        self.m, self.n, self.k, self.bias, self.relu = m, n, k, bias, relu
        suffix = ("_bias" if bias else "") + ("_relu" if relu else "")
        self.name = f"gemm_{m}x{n}x{k}{suffix}_scalar"
        bufs = [BufferParam("a", "r"), BufferParam("b", "r")]
        if bias:
            bufs.append(BufferParam("bias", "r"))
        bufs.append(BufferParam("c", "w"))
        self.buffers = tuple(bufs)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        m, n, k = self.m, self.n, self.k
        a, b, c = bufs["a"], bufs["b"], bufs["c"]
        i, j, p = fb.local("i", "i32"), fb.local("j", "i32"), fb.local("p", "i32")
        pa, pb = fb.local("pa", "i32"), fb.local("pb", "i32")
        acc = fb.local("acc", "f32")
        with fb.for_range(i, 0, m), fb.for_range(j, 0, n):
            fb.set(acc, bufs["bias"].load(j) if self.bias else f32(0.0))
            fb.set(pa, a.addr(i * k))
            fb.set(pb, b.addr(j))
            with fb.for_range(p, 0, k):
                fb.set(acc, acc + a.load_at(pa) * b.load_at(pb))
                fb.set(pa, pa + 4)
                fb.set(pb, pb + 4 * n)
            c.store(i * n + j, acc.max(0.0) if self.relu else acc)


def gemm_reference(a: np.ndarray, b: np.ndarray, bias: np.ndarray | None = None,
                   relu: bool = False) -> np.ndarray:
    out = a.astype(np.float64) @ b.astype(np.float64)
    if bias is not None:
        out = out + bias.astype(np.float64)
    if relu:
        out = np.maximum(out, 0.0)
    return out.astype(np.float32)


def gemm_tolerance(k: int) -> Tolerance:
    return Tolerance(rtol=1e-5, atol=1e-6 * k)


class GemmWorkload(Workload):
    NAME = "gemm"
    DESCRIPTION = "C = A @ B, A an input [m,k], B a weight [k,n]"
    PARAMS = (
        Param("m", "int", 64, "rows of A and C", minimum=1),
        Param("n", "int", 64, "columns of B and C", minimum=1),
        Param("k", "int", 64, "reduction length", minimum=1),
    )
    TOLERANCE_DOC = __doc__ or ""

    def build_tensors(self) -> tuple[Tensor, ...]:
        m, n, k = self.params["m"], self.params["n"], self.params["k"]
        return (Tensor("a", "input", (m, k)), Tensor("b", "weight", (k, n)),
                Tensor("c", "output", (m, n)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        m, n, k = self.params["m"], self.params["n"], self.params["k"]
        return (Dispatch("gemm", GemmKernel(m, n, k), (("a", "a"), ("b", "b"), ("c", "c"))),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"c": gemm_reference(data["a"], data["b"])}

    def tolerance(self) -> Tolerance:
        return gemm_tolerance(self.params["k"])

    def flops(self) -> int:
        return 2 * self.params["m"] * self.params["n"] * self.params["k"]

"""Elementwise kernels over n f32 elements: `add` (z = x + y), `mul` (z = x * y) and
`bias-relu` (y = max(x + bias, 0)); `add-relu` (z = max(x + y, 0), a residual join).

SIMD variant: one v128 load per operand and one v128 store per four elements, scalar
tail for the last n mod 4. The vector ReLU is `f32x4.pmax(x, 0)` (one x86 `maxps`;
NaN stays NaN, -0 stays -0, which equals 0).

Tolerance: exact. One IEEE f32 add or mul (and a max) per element gives the same bits as
NumPy's float32 arithmetic, in either variant, so rtol = atol = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import ClassVar

import numpy as np

from harness.codegen import Buffer, BufferParam, Expr, FunctionBuilder, Kernel, simd
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM, isa_features

Binary = Callable[[Expr, Expr], Expr]

#: op name -> (scalar form, f32x4 form)
OPS: dict[str, tuple[Binary, Binary]] = {
    "add": (lambda a, b: a + b, simd.add),
    "mul": (lambda a, b: a * b, simd.mul),
    "bias_relu": (lambda a, b: (a + b).max(0.0), lambda a, b: simd.relu(simd.add(a, b))),
}
#: z = max(x + y, 0) of two same-shape tensors (a residual join): bias-relu's arithmetic
OPS["add_relu"] = OPS["bias_relu"]


class BinaryKernel(Kernel):
    """out[i] = f(a[i], b[i]) for i < n; buffers named by the workload."""

    def __init__(self, op: str, n: int, isa: str, names: tuple[str, str, str]) -> None:
        self.op, self.n, self.isa = op, n, isa
        self.names = names
        self.name = f"{op}_{n}_{isa}"
        self.buffers = (BufferParam(names[0], "r"), BufferParam(names[1], "r"),
                        BufferParam(names[2], "w"))
        self.features = isa_features(isa)

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        a, b, out = (bufs[n] for n in self.names)
        scalar, vector = OPS[self.op]
        i = fb.local("i", "i32")
        if self.isa == "scalar":
            with fb.for_range(i, 0, self.n):
                out.store(i, scalar(a.load(i), b.load(i)))
            return
        simd.for_lanes(
            fb, i, self.n,
            lambda: out.store(i, vector(a.load(i, "v128"), b.load(i, "v128")), "v128"),
            lambda: out.store(i, scalar(a.load(i), b.load(i))))


class _ElementwiseWorkload(Workload):
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("n", "int", 4096, "number of elements", minimum=1), ISA_PARAM)
    TOLERANCE_DOC = __doc__ or ""
    OP = ""
    #: (first operand, second operand, output) tensor names; the second's role
    NAMES: ClassVar[tuple[str, str, str]] = ("x", "y", "z")
    SECOND_ROLE = "input"

    def build_tensors(self) -> tuple[Tensor, ...]:
        n = self.params["n"]
        a, b, out = self.NAMES
        return (Tensor(a, "input", (n,)), Tensor(b, self.SECOND_ROLE, (n,)),
                Tensor(out, "output", (n,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        kern = BinaryKernel(self.OP, self.params["n"], self.params["isa"], self.NAMES)
        return (Dispatch(self.OP, kern, tuple((t, t) for t in self.NAMES)),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        a, b, out = self.NAMES
        return {out: self.numpy(data[a], data[b])}

    def numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)

    def flops(self) -> int:
        return self.params["n"]


class AddWorkload(_ElementwiseWorkload):
    NAME = "add"
    DESCRIPTION = "z = x + y over n elements"
    OP = "add"

    def numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b


class MulWorkload(_ElementwiseWorkload):
    NAME = "mul"
    DESCRIPTION = "z = x * y over n elements"
    OP = "mul"

    def numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b


class BiasReluWorkload(_ElementwiseWorkload):
    NAME = "bias-relu"
    DESCRIPTION = "y = max(x + bias, 0) over n elements"
    OP = "bias_relu"
    NAMES = ("x", "bias", "y")
    SECOND_ROLE = "weight"

    def numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(a + b, np.float32(0))

    def flops(self) -> int:
        return 2 * self.params["n"]


class AddReluWorkload(_ElementwiseWorkload):
    NAME = "add-relu"
    DESCRIPTION = "z = max(x + y, 0) over n elements (a residual join)"
    OP = "add_relu"

    def numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.maximum(a + b, np.float32(0))

    def flops(self) -> int:
        return 2 * self.params["n"]

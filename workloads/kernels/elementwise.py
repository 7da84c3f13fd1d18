"""Elementwise kernels: bias-relu, y = max(x + bias, 0).

Tolerance: exact. One IEEE f32 add and one max per element give the same bits as
NumPy's float32 arithmetic, so rtol = atol = 0.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel
from harness.params import Param
from harness.workload import Dispatch, Tensor, Tolerance, Workload


class BiasReluKernel(Kernel):
    def __init__(self, n: int) -> None:
        self.n = n
        self.name = f"bias_relu_{n}_scalar"
        self.buffers = (BufferParam("x", "r"), BufferParam("bias", "r"), BufferParam("y", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, bias, y = bufs["x"], bufs["bias"], bufs["y"]
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, self.n):
            y.store(i, (x.load(i) + bias.load(i)).max(0.0))


class BiasReluWorkload(Workload):
    NAME = "bias-relu"
    DESCRIPTION = "y = max(x + bias, 0) over n elements"
    PARAMS = (Param("n", "int", 4096, "number of elements", minimum=1),)
    TOLERANCE_DOC = __doc__ or ""

    def build_tensors(self) -> tuple[Tensor, ...]:
        n = self.params["n"]
        return (Tensor("x", "input", (n,)), Tensor("bias", "weight", (n,)),
                Tensor("y", "output", (n,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("bias_relu", BiasReluKernel(self.params["n"]),
                         (("x", "x"), ("bias", "bias"), ("y", "y"))),)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": np.maximum(data["x"] + data["bias"], np.float32(0))}

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)

    def flops(self) -> int:
        return 2 * self.params["n"]

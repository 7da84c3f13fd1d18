"""`mlp`: a multi-layer perceptron, one dense dispatch (GEMM + bias, ReLU between layers)
per layer, each its own module, so activations cross executables.

`sizes=64-32-10` means input width 64, a hidden layer of 32, 10 outputs: two dispatches.
`isa=simd|scalar` picks the GEMM variant of every layer (see `workloads.kernels.gemm`).
Tolerance: that of the widest layer's GEMM (errors do not grow through ReLU).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np

from harness.core.errors import SpecError
from harness.plugins.params import Param
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.gemm import ISA_PARAM, GemmKernel, gemm_reference, gemm_tolerance


def parse_sizes(raw: str) -> str:
    parts = raw.split("-")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise SpecError(f"sizes must be positive integers joined by '-', got {raw!r}") from None
    if len(sizes) < 2 or any(s <= 0 for s in sizes):
        raise SpecError(f"sizes needs at least two positive widths like 64-32-10, got {raw!r}")
    return raw


class MlpWorkload(Workload):
    NAME = "mlp"
    DESCRIPTION = "dense layers (GEMM+bias, ReLU between), one module per layer"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("batch", "int", 16, "rows per inference", minimum=1),
        Param("sizes", "str", "64-32-10", "layer widths, input first", check=parse_sizes),
        ISA_PARAM,
    )
    TOLERANCE_DOC = __doc__ or ""

    @property
    def widths(self) -> list[int]:
        return [int(s) for s in str(self.params["sizes"]).split("-")]

    def batch(self) -> int:
        """Rows per inference (subclasses with real data derive it from the data set)."""
        return int(self.params["batch"])

    def isa(self) -> str:
        """GEMM variant; subclasses that declare no `isa` parameter get the default."""
        return str(self.params.get("isa", ISA_PARAM.default))

    def build_tensors(self) -> tuple[Tensor, ...]:
        b, w = self.batch(), self.widths
        ts = [Tensor("x", "input", (b, w[0]))]
        last = len(w) - 2
        for i in range(len(w) - 1):
            ts.append(Tensor(f"w{i}", "weight", (w[i], w[i + 1])))
            ts.append(Tensor(f"b{i}", "weight", (w[i + 1],)))
            ts.append(Tensor("y" if i == last else f"h{i}",
                             "output" if i == last else "intermediate", (b, w[i + 1])))
        return tuple(ts)

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        b, w = self.batch(), self.widths
        out = []
        last = len(w) - 2
        for i in range(len(w) - 1):
            src = "x" if i == 0 else f"h{i - 1}"
            dst = "y" if i == last else f"h{i}"
            kern = GemmKernel(b, w[i + 1], w[i], bias=True, relu=i != last, isa=self.isa())
            out.append(Dispatch(f"dense{i}", kern,
                                (("a", src), ("b", f"w{i}"), ("bias", f"b{i}"), ("c", dst))))
        return tuple(out)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        h = data["x"]
        w = self.widths
        for i in range(len(w) - 1):
            h = gemm_reference(h, data[f"w{i}"], data[f"b{i}"], relu=i != len(w) - 2)
        return {"y": h}

    def tolerance(self) -> Tolerance:
        return gemm_tolerance(max(self.widths[:-1]))

    def flops(self) -> int:
        w = self.widths
        return sum(2 * self.batch() * w[i] * w[i + 1] for i in range(len(w) - 1))

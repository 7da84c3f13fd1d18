"""`ConvModelWorkload`: a workload whose tensors, dispatches, reference, FLOPs and
tolerance all come from one `workloads.models.cnn.Graph` that the subclass builds."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from functools import cached_property

import numpy as np

from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from workloads.kernels.isa import ISA_PARAM
from workloads.models.cnn import Graph


class ConvModelWorkload(Workload):
    @abstractmethod
    def build(self, g: Graph) -> None:
        """Add the model's input, layers and output to `g`."""

    @cached_property
    def graph(self) -> Graph:
        g = Graph(str(self.params.get("isa", ISA_PARAM.default)))
        self.build(g)
        return g

    def build_tensors(self) -> tuple[Tensor, ...]:
        return tuple(self.graph.tensors)

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return tuple(self.graph.dispatches)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        return self.graph.generate_tensor(t, rng)

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.graph.reference(data)

    def tolerance(self) -> Tolerance:
        return self.graph.tolerance()

    def flops(self) -> int:
        return self.graph.flops

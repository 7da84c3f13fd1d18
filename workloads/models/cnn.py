"""A small graph builder for the convolutional models (kws-dscnn, resnet8): each layer adds
its output tensor, one dispatch (one module) running an existing kernel, a float64 NumPy
step for the reference, its FLOPs and its share of the tolerance.

Batch 1, NHWC activations, HWIO conv weights, biases (batch norm folded into the conv
weights and biases, as deployed). Weights are seeded: He-scaled N(0, 2/fan-in) conv and
dense weights keep ReLU activations O(1) through the network; biases N(0, 0.1^2).

Reference: every layer in float64 from the previous layer's f32-rounded output (the
tensors the wasm pipeline passes between modules are f32 too).
Tolerance: atol is the sum over layers of each kernel's own atol (GEMM/conv:
1e-6 * reduction length; dwconv 1e-5; avg pool 1e-6; add/ReLU exact), doubled for
propagation through later layers (He-scaled layers have gain ~1); rtol 1e-4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from harness.codegen import Kernel
from harness.plugins.workload import Dispatch, Tensor, Tolerance
from workloads.kernels.conv2d import Conv2dKernel, conv2d_reference, out_size
from workloads.kernels.dwconv import DwConvKernel
from workloads.kernels.elementwise import BinaryKernel
from workloads.kernels.gemm import GemmKernel
from workloads.kernels.pool import PoolKernel
from workloads.kernels.window import Axis, windows

Arrays = Mapping[str, np.ndarray]
Step = Callable[[Arrays], np.ndarray]
Shape = tuple[int, int, int]  # (h, w, c)


@dataclass
class Graph:
    """Accumulates tensors, dispatches, reference steps, FLOPs and tolerance."""

    isa: str
    tensors: list[Tensor] = field(default_factory=list)
    dispatches: list[Dispatch] = field(default_factory=list)
    steps: list[tuple[str, Step]] = field(default_factory=list)
    flops: int = 0
    atol: float = 0.0
    #: weight name -> (standard deviation, ) for seeded generation
    scales: dict[str, float] = field(default_factory=dict)

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        self.tensors.append(Tensor(name, "input", shape))
        return name

    def _weight(self, name: str, shape: tuple[int, ...], std: float) -> str:
        self.tensors.append(Tensor(name, "weight", shape))
        self.scales[name] = std
        return name

    def output_of(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)

    def _layer(self, name: str, kernel: Kernel, bindings: tuple[tuple[str, str], ...],
               out: str, shape: tuple[int, ...], step: Step, flops: int, atol: float,
               final: bool) -> str:
        self.tensors.append(Tensor(out, "output" if final else "intermediate", shape))
        self.dispatches.append(Dispatch(name, kernel, bindings))
        self.steps.append((out, step))
        self.flops += flops
        self.atol += atol
        return out

    def conv(self, name: str, src: str, shape: Shape, cout: int, kh: int, kw: int,
             stride: int, pad: int, relu: bool) -> tuple[str, Shape]:
        h, w, cin = shape
        oh, ow = out_size(h, kh, stride, pad), out_size(w, kw, stride, pad)
        k = kh * kw * cin
        wt = self._weight(f"{name}_w", (kh, kw, cin, cout), np.sqrt(2.0 / k))
        bias = self._weight(f"{name}_b", (cout,), 0.1)
        kern = Conv2dKernel(1, h, w, cin, cout, kh, kw, stride, pad, relu, self.isa)

        def step(d: Arrays) -> np.ndarray:
            return conv2d_reference(d[src][None], d[wt], d[bias], stride, pad, relu)[0]
        out = self._layer(name, kern, (("x", src), ("w", wt), ("bias", bias), ("y", name)),
                          name, (oh, ow, cout), step, 2 * oh * ow * cout * k + oh * ow * cout,
                          1e-6 * k, final=False)
        return out, (oh, ow, cout)

    def dwconv(self, name: str, src: str, shape: Shape) -> tuple[str, Shape]:
        """Depthwise 3x3, stride 1, padding 1, bias + ReLU."""
        h, w, c = shape
        wt = self._weight(f"{name}_w", (3, 3, c), np.sqrt(2.0 / 9))
        bias = self._weight(f"{name}_b", (c,), 0.1)
        kern = DwConvKernel(h, w, c, 1, 1, True, self.isa)
        ay, ax = Axis(h, 3, 1, 1), Axis(w, 3, 1, 1)

        def step(d: Arrays) -> np.ndarray:
            win = windows(d[src].astype(np.float64), ay, ax, 0.0)
            y = np.einsum("abijc,ijc->abc", win, d[wt].astype(np.float64)) + d[bias]
            return np.maximum(y, 0.0)
        out = self._layer(name, kern, (("x", src), ("w", wt), ("bias", bias), ("y", name)),
                          name, (h, w, c), step, 2 * 9 * h * w * c, 1e-5, final=False)
        return out, shape

    def dense(self, name: str, src: str, rows: int, k: int, n: int, relu: bool,
              final: bool = False) -> str:
        """GEMM over `rows` rows + bias (+ ReLU): an FC layer, or a pointwise (1x1) conv
        over the h*w pixels of an NHWC activation."""
        wt = self._weight(f"{name}_w", (k, n), np.sqrt(2.0 / k))
        bias = self._weight(f"{name}_b", (n,), 0.1)
        kern = GemmKernel(rows, n, k, bias=True, relu=relu, isa=self.isa)
        src_shape = next(t.shape for t in self.tensors if t.name == src)

        def step(d: Arrays) -> np.ndarray:
            y = d[src].astype(np.float64).reshape(rows, k) @ d[wt].astype(np.float64) + d[bias]
            return np.maximum(y, 0.0) if relu else y
        shape = (rows, n) if final else (*src_shape[:-1], n)
        return self._layer(name, kern, (("a", src), ("b", wt), ("bias", bias), ("c", name)),
                           name, shape, step, 2 * rows * n * k + rows * n,
                           1e-6 * k, final)

    def add_relu(self, name: str, a: str, b: str, shape: Shape) -> str:
        n = int(np.prod(shape))
        kern = BinaryKernel("add_relu", n, self.isa, ("x", "y", "z"))

        def step(d: Arrays) -> np.ndarray:
            return np.maximum(d[a].astype(np.float64) + d[b], 0.0)
        return self._layer(name, kern, (("x", a), ("y", b), ("z", name)), name, shape, step,
                           2 * n, 0.0, final=False)

    def global_avgpool(self, name: str, src: str, shape: Shape) -> str:
        h, w, c = shape
        kern = PoolKernel(h, w, c, h, w, 1, 0, "avg", self.isa)

        def step(d: Arrays) -> np.ndarray:
            return d[src].astype(np.float64).mean(axis=(0, 1), keepdims=True)
        return self._layer(name, kern, (("x", src), ("y", name)), name, (1, 1, c), step,
                           h * w * c, 1e-6, final=False)

    # -- what the workload needs -------------------------------------------------------
    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        return (rng.standard_normal(t.shape) * self.scales.get(t.name, 1.0)).astype(t.dtype)

    def reference(self, data: Arrays) -> dict[str, np.ndarray]:
        values = dict(data)
        for out, step in self.steps:
            values[out] = step(values).astype(np.float32).reshape(self.output_of(out).shape)
        return {t.name: values[t.name].reshape(t.shape) for t in self.tensors
                if t.role == "output"}

    def tolerance(self) -> Tolerance:
        return Tolerance(rtol=1e-4, atol=2 * self.atol)

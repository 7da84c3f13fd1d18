"""`Workload`: named, parametric ML work — tensors, ordered dispatches, data, NumPy reference.

A workload knows nothing about memories: it says which tensors exist (input, weight,
intermediate, output), which kernel each dispatch runs and which tensors it binds.
Strategies decide where the tensors live.
"""

from __future__ import annotations

import math
import zlib
from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from harness.codegen.kernel import Kernel
from harness.core.errors import ShapeError
from harness.core.fmt import fmt_bytes
from harness.plugins.registry import Plugin

ROLES = ("input", "weight", "intermediate", "output")
WASM32_LIMIT = 4 * 1024**3  # bytes addressable by one wasm32 memory
WASM_PAGE = 65536


@dataclass(frozen=True)
class Tensor:
    """A named tensor with a role, a shape and a dtype (f32 throughout for now)."""

    name: str
    role: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"tensor {self.name}: role must be one of {ROLES}")
        if any((not isinstance(d, int)) or d <= 0 for d in self.shape):
            raise ShapeError(f"tensor {self.name}: every dimension must be a positive integer, "
                             f"got shape {self.shape}")

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact: NumPy's int64 product wraps on huge shapes

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class Dispatch:
    """One kernel launch: the kernel, which tensor each of its buffers binds and the value
    of each of its scalar arguments (`Kernel.scalars`).

    `executable` names the loaded executable (one instance) the dispatch runs on; empty:
    its own. Dispatches that share one (a decode's tokens) share its instance and, where a
    strategy gives modules memories, its memory, as an ML runtime dispatches one loaded
    executable many times."""

    name: str
    kernel: Kernel
    bindings: tuple[tuple[str, str], ...]  # (kernel buffer name, tensor name)
    scalars: tuple[tuple[str, int], ...] = ()  # (kernel scalar name, value)
    executable: str = ""

    def __post_init__(self) -> None:
        names = tuple(n for n, _ in self.scalars)
        if sorted(names) != sorted(self.kernel.scalars):
            raise ValueError(f"dispatch {self.name}: kernel {self.kernel.name} takes scalars "
                             f"{list(self.kernel.scalars)}, given {list(names)}")

    @property
    def instance(self) -> str:
        """The instance it runs on: its executable's, or its own."""
        return self.executable or self.name

    def tensor_of(self, buffer: str) -> str:
        for b, t in self.bindings:
            if b == buffer:
                return t
        raise KeyError(f"dispatch {self.name} binds no buffer {buffer!r}")

    def access_of(self, tensor: str) -> str:
        """Union of the access modes this dispatch uses on `tensor` ("r", "w" or "rw")."""
        modes = {p.access for p in self.kernel.buffers if self.tensor_of(p.name) == tensor}
        joined = "".join(sorted(set("".join(modes))))
        return {"r": "r", "w": "w", "rw": "rw"}[joined]


@dataclass(frozen=True)
class Tolerance:
    """Allowed |actual - expected| <= atol + rtol * |expected|, elementwise (f32 outputs)."""

    rtol: float
    atol: float


class Workload(Plugin):
    """Base of every workload plugin. Subclasses define tensors, dispatches and reference."""

    #: why the tolerance is what it is (shown by `membench list`)
    TOLERANCE_DOC: str = "f32 accumulation order differs from NumPy's"

    @abstractmethod
    def build_tensors(self) -> tuple[Tensor, ...]:
        ...

    @abstractmethod
    def build_dispatches(self) -> tuple[Dispatch, ...]:
        ...

    @abstractmethod
    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """NumPy reference: every output tensor from the inputs and weights in `data`."""

    @abstractmethod
    def tolerance(self) -> Tolerance:
        ...

    @cached_property
    def tensors(self) -> tuple[Tensor, ...]:
        ts = self.build_tensors()
        names = [t.name for t in ts]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.spec}: duplicate tensor names {names}")
        return ts

    @cached_property
    def dispatches(self) -> tuple[Dispatch, ...]:
        ds = self.build_dispatches()
        kernels: dict[str, str] = {}
        for d in ds:  # one executable is one module: every dispatch of it runs one kernel
            if kernels.setdefault(d.instance, d.kernel.name) != d.kernel.name:
                raise ValueError(f"{self.spec}: executable {d.instance} runs kernels "
                                 f"{kernels[d.instance]} and {d.kernel.name}")
        return ds

    def extents(self) -> dict[str, tuple[int, ...]]:
        """The tensors that grow during an inference (a decode's KV cache): for each, the
        bytes from its start that each dispatch may touch (0 where it binds it not). A
        strategy places a growing tensor last in its memory and grows the memory before
        the first dispatch that needs more. Other tensors are used whole."""
        return {}

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"{self.spec} has no tensor {name!r}")

    def by_role(self, *roles: str) -> list[Tensor]:
        return [t for t in self.tensors if t.role in roles]

    def generate(self, seed: int) -> dict[str, np.ndarray]:
        """Deterministic inputs and weights: each tensor from its own stream (seed, name)."""
        out: dict[str, np.ndarray] = {}
        for t in self.by_role("input", "weight"):
            out[t.name] = self.generate_tensor(t, tensor_rng(seed, t.name))
        return out

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        """Default data: N(0, 1) inputs; weights scaled by 1/sqrt(fan-in) like He/Glorot."""
        scale = 1.0
        if t.role == "weight" and len(t.shape) >= 2:
            scale = 1.0 / np.sqrt(t.shape[0])
        return (rng.standard_normal(t.shape) * scale).astype(t.dtype)

    def flops(self) -> int:
        """Floating-point operations per inference (0 when not meaningful)."""
        return 0

    def compulsory_bytes(self) -> int:
        """Bytes an inference must touch at least once: inputs, weights and outputs."""
        return sum(t.nbytes for t in self.by_role("input", "weight", "output"))

    def metrics(self, data: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """Extra per-cell figures (e.g. model accuracy), computed from verified outputs."""
        return {}

    def check_limits(self, max_memory: int | None = None) -> None:
        """Refuse, before any work, a workload that cannot fit a wasm32 memory or the budget."""
        total = sum(t.nbytes for t in self.tensors)
        biggest = max(self.tensors, key=lambda t: t.nbytes)
        if biggest.nbytes > WASM32_LIMIT or total > WASM32_LIMIT:
            raise ShapeError(f"{self.spec} needs {fmt_bytes(total)} of tensors "
                             f"(largest {biggest.name}: {fmt_bytes(biggest.nbytes)}); a wasm32 "
                             f"memory holds at most {fmt_bytes(WASM32_LIMIT)}")
        if max_memory is not None and total > max_memory:
            raise ShapeError(f"{self.spec} needs {fmt_bytes(total)} of tensors, over the "
                             f"--max-memory budget of {fmt_bytes(max_memory)}")


def tensor_rng(seed: int, name: str) -> np.random.Generator:
    """A generator that depends only on (seed, tensor name), stable across Python runs."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])

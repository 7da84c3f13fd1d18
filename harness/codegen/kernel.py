"""The `Kernel` interface and `build_kernel_module`, which joins a kernel with a lowering.

Kernel ABI: every module exports `run`, taking one i32 base address per buffer (in
`Kernel.buffers` order) and, if `scratch_bytes > 0`, a final i32 scratch base address.
Shapes are compile-time constants: one module per (kernel, shape), like an IREE executable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.codegen.function import Buffer, FunctionBuilder
from harness.codegen.lowering import MemoryLowering
from harness.codegen.module import ModuleBuilder, assemble

SCRATCH = "scratch"


@dataclass(frozen=True)
class BufferParam:
    """A kernel buffer parameter; `access` is "r", "w" or "rw"."""

    name: str
    access: str

    def __post_init__(self) -> None:
        if self.access not in ("r", "w", "rw"):
            raise ValueError(f"access must be r, w or rw, not {self.access!r}")


class Kernel(ABC):
    """A kernel specialised to one shape, written once against `FunctionBuilder`."""

    #: unique per (kernel family, shape, variant): names the module
    name: str = ""
    buffers: tuple[BufferParam, ...] = ()
    #: private working memory the kernel needs (packing panels, ...), in bytes
    scratch_bytes: int = 0
    #: wasm features the kernel body itself needs (e.g. "simd128")
    features: frozenset[str] = frozenset()

    @abstractmethod
    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        """Emit the body of `run`; `bufs` has every buffer, plus "scratch" if requested."""

    def params(self) -> list[str]:
        names = [b.name for b in self.buffers]
        return [*names, SCRATCH] if self.scratch_bytes else names


@dataclass(frozen=True)
class KernelModule:
    """A generated module: WAT text, wasm bytes and the export's argument order."""

    name: str
    wat: str
    wasm: bytes = field(repr=False)
    export: str
    args: tuple[str, ...]
    features: frozenset[str]


def build_kernel_module(kernel: Kernel, lowering: MemoryLowering,
                        spaces: Mapping[str, str]) -> KernelModule:
    """Generate and assemble the module for `kernel` under `lowering`.

    `spaces` maps each buffer name (and "scratch") to a space the lowering knows.
    """
    args = kernel.params()
    missing = [a for a in args if a not in spaces]
    if missing:
        raise KeyError(f"no memory space for buffers {missing} of kernel {kernel.name}")
    mb = ModuleBuilder()
    lowering.declare(mb)
    fb = FunctionBuilder("run", [(f"p_{a}", "i32") for a in args], lowering,
                         export="run", module=mb)
    bufs = {a: fb.buffer(a, fb.param(f"p_{a}"), spaces[a]) for a in args}
    for stmt in lowering.prologue():
        fb.emit(stmt)
    kernel.emit(fb, bufs)
    for stmt in lowering.epilogue():
        fb.emit(stmt)
    mb.add_func(fb.render())
    lowering.finish(mb)
    wat = mb.render()
    return KernelModule(name=kernel.name, wat=wat, wasm=assemble(wat), export="run",
                        args=tuple(args), features=kernel.features | lowering.features)

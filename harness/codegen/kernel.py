"""The `Kernel` interface and `build_kernel_module`, which joins a kernel with a lowering.

Kernel ABI: every module exports `run`, taking one base address per buffer (in
`Kernel.buffers` order), then one value per scalar (`Kernel.scalars`: a length or a
position only known per dispatch, e.g. a decode's KV-cache position) and, if
`scratch_bytes > 0`, a final scratch base address; every argument is i32, or i64 where the
lowering's memories are 64-bit (`address_type`: a scalar is then widened by the caller and
wrapped by the kernel).
Shapes are compile-time constants: one module per (kernel, shape), like an IREE executable.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from harness.codegen.expr import Expr
from harness.codegen.function import Buffer, FunctionBuilder
from harness.codegen.lowering import MemoryForm, MemoryLowering
from harness.codegen.module import ModuleBuilder, assemble
from harness.core.errors import Unsupported

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

    #: bytes at the bottom of the kernel's memory the module keeps for itself (a C
    #: kernel's stack): strategies place tensors above them
    reserved_bytes: int = 0

    #: non-negative i32 arguments after the buffers, set per dispatch (`Dispatch.scalars`)
    scalars: tuple[str, ...] = ()

    def params(self) -> list[str]:
        names = [b.name for b in self.buffers] + list(self.scalars)
        return [*names, SCRATCH] if self.scratch_bytes else names

    def splittable_rows(self) -> int:
        """Rows of output the kernel computes independently of each other, so that agents
        may split them (`row_slice`); 0: it cannot be split by rows."""
        return 0

    def row_slice(self, lo: int, hi: int) -> RowSlice:
        """The kernel for output rows [lo, hi) alone, and how far each buffer's address
        moves for it (a row-major buffer's rows lo.. begin that many bytes in)."""
        raise Unsupported(f"{self.name} cannot be split by rows")

    @staticmethod
    def scalar(fb: FunctionBuilder, name: str) -> Expr:
        """Scalar argument `name` as an i32 (wrapped from the i64 of a memory64 module)."""
        p = fb.param(f"p_{name}")
        return Expr(f"(i32.wrap_i64 {p.wat})", "i32") if p.ty == "i64" else p


@dataclass(frozen=True)
class RowSlice:
    """A kernel for some rows of another's output (`Kernel.row_slice`): `offsets` is the
    byte offset from each buffer's address to the slice's (0 where a buffer is read whole)."""

    kernel: Kernel
    offsets: tuple[tuple[str, int], ...]


class ExternalKernel(Kernel):
    """A kernel whose module another toolchain builds (C through clang): it addresses one
    memory, in the form the strategy's lowering declares it (`MemoryLowering.memory_form`),
    and exports `run` with the same arguments as a generated kernel."""

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        raise TypeError(f"{self.name} is built by a toolchain, not emitted")

    @abstractmethod
    def build_module(self, form: MemoryForm) -> KernelModule:
        """The module for `form` (raise `Unsupported` where the toolchain cannot)."""

    #: why a lowering that is not one memory of plain loads and stores cannot take it
    NOT_ONE_MEMORY = ("a C kernel compiled by clang addresses one linear memory with plain "
                      "loads and stores: no strategy of several memories or host calls")


@dataclass(frozen=True)
class KernelModule:
    """A generated module: WAT text, wasm bytes and the export's argument order."""

    name: str
    wat: str
    wasm: bytes = field(repr=False)
    export: str
    args: tuple[str, ...]
    features: frozenset[str]
    #: the type of the export's address arguments (i64: memory64)
    address_type: str = "i32"


def build_kernel_module(kernel: Kernel, lowering: MemoryLowering,
                        spaces: Mapping[str, str]) -> KernelModule:
    """Generate and assemble the module for `kernel` under `lowering`.

    `spaces` maps each buffer name (and "scratch") to a space the lowering knows.
    """
    args = kernel.params()
    buffers = [a for a in args if a not in kernel.scalars]  # and scratch
    missing = [a for a in buffers if a not in spaces]
    if missing:
        raise KeyError(f"no memory space for buffers {missing} of kernel {kernel.name}")
    if isinstance(kernel, ExternalKernel):
        if lowering.address_type != "i32":
            raise Unsupported(f"{kernel.name}: a C kernel here is built by clang for wasm32; "
                              "memory64=1 is the code generator's form")
        form = lowering.memory_form(spaces[a] for a in buffers)
        if form is None:
            raise Unsupported(f"{kernel.name}: {kernel.NOT_ONE_MEMORY}")
        km = kernel.build_module(form)
        return dataclasses.replace(km, features=km.features | lowering.features)
    mb = ModuleBuilder()
    lowering.declare(mb)
    fb = FunctionBuilder("run", [(f"p_{a}", lowering.address_type) for a in args], lowering,
                         export="run", module=mb)
    bufs = {a: fb.buffer(a, fb.param(f"p_{a}"), spaces[a]) for a in buffers}
    for stmt in lowering.prologue():
        fb.emit(stmt)
    kernel.emit(fb, bufs)
    for stmt in lowering.epilogue():
        fb.emit(stmt)
    mb.add_func(fb.render())
    lowering.finish(mb)
    wat = mb.render()
    return KernelModule(name=kernel.name, wat=wat, wasm=assemble(wat), export="run",
                        args=tuple(args), features=kernel.features | lowering.features,
                        address_type=lowering.address_type)

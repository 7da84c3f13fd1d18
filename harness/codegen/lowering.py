"""`MemoryLowering`: how a strategy turns an abstract buffer access into wasm.

A kernel says "load f32 from buffer `a` at byte address X"; the lowering decides whether
that is `f32.load` on memory `$heap`, a call to an imported host function, or a lookup in
a software page cache. Buffers are grouped into named *spaces* ("heap", "weights",
"scratch", ...) that the strategy maps to memories.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from harness.codegen.expr import Expr
from harness.codegen.module import ModuleBuilder

_LOAD = {"i32": "i32.load", "f32": "f32.load", "i64": "i64.load", "f64": "f64.load",
         "v128": "v128.load"}
_STORE = {"i32": "i32.store", "f32": "f32.store", "i64": "i64.store", "f64": "f64.store",
          "v128": "v128.store"}


@dataclass(frozen=True)
class MemoryForm:
    """The one memory a module built by another toolchain (C through clang) may have,
    as a strategy's lowering declares it: imported as `module`.`field` (`import`), or
    defined with `pages` and exported as `export` (`define`)."""

    kind: str                      # "import" or "define"
    module: str = ""
    field: str = ""
    export: str = ""
    pages: int = 0


class MemoryLowering(ABC):
    """Strategy-supplied translation of buffer accesses (one instance per module)."""

    #: wasm features the generated module needs because of this lowering
    #: (e.g. "multi-memory"); the plan collects them so unsupported runtimes say so.
    features: frozenset[str] = frozenset()
    #: the type of a byte address: "i64" where the module's memories are 64-bit (memory64);
    #: kernels' buffer parameters and pointer locals take it
    address_type: str = "i32"

    @abstractmethod
    def declare(self, mb: ModuleBuilder) -> None:
        """Add the memories, imports and globals this lowering's accesses refer to."""

    def finish(self, mb: ModuleBuilder) -> None:  # noqa: B027 - optional hook
        """Add helper functions after the kernel body was emitted (if any were used)."""

    def locals(self) -> Sequence[tuple[str, str]]:
        """(name, type) of scratch locals every function using this lowering declares
        (e.g. a cache lowering's address temporaries)."""
        return ()

    def prologue(self) -> Sequence[str]:
        """Statements run on entry to the kernel's exported function."""
        return ()

    def epilogue(self) -> Sequence[str]:
        """Statements run when the kernel body completes (e.g. a cache's write-back)."""
        return ()

    @abstractmethod
    def load(self, space: str, addr: Expr, ty: str, offset: int) -> Expr:
        """An expression loading a `ty` value from byte address `addr + offset` of `space`."""

    @abstractmethod
    def store(self, space: str, addr: Expr, value: Expr, ty: str, offset: int) -> str:
        """A statement storing `value` (of type `ty`) at byte address `addr + offset`."""

    def memory_form(self, spaces: Iterable[str]) -> MemoryForm | None:
        """The single memory `spaces` live in, where this lowering is plain loads and
        stores on the one memory it declares (None: several memories, or accesses that are
        not loads and stores, such as host calls)."""
        return None


class DirectLowering(MemoryLowering):
    """Plain loads and stores on memories the module can address (by WAT name, e.g. `$heap`).

    `spaces` maps each space to a memory name; `declarations` are the WAT memory fields
    (imports or definitions) that introduce those names.
    """

    def __init__(self, spaces: Mapping[str, str], declarations: Sequence[str],
                 features: frozenset[str] = frozenset(), address_type: str = "i32") -> None:
        if address_type not in ("i32", "i64"):
            raise ValueError(f"address_type must be i32 or i64, not {address_type!r}")
        self.spaces = dict(spaces)
        self.declarations = list(declarations)
        self.features = features
        self.address_type = address_type

    def declare(self, mb: ModuleBuilder) -> None:
        for decl in self.declarations:
            if decl.lstrip().startswith("(import"):
                mb.add_import(decl)
            else:
                mb.add_memory(decl)

    def _mem(self, space: str) -> str:
        try:
            return self.spaces[space]
        except KeyError:
            raise KeyError(f"lowering has no memory for space {space!r}; "
                           f"known: {sorted(self.spaces)}") from None

    def memory_form(self, spaces: Iterable[str]) -> MemoryForm | None:
        # one memory in all: a module the plan expects to have more (a private memory it
        # exports beside the heap) cannot be one memory, whatever its buffers use
        if sum("(memory" in d for d in self.declarations) != 1:
            return None
        if any("(pagesize" in d for d in self.declarations):
            return None   # LLVM's linker has no custom page sizes
        try:
            names = {self._mem(s) for s in spaces}
        except KeyError:
            return None
        if len(names) != 1:
            return None
        name = re.escape(names.pop())
        for decl in self.declarations:
            m = re.search(r'\(import "([^"]+)" "([^"]+)" \(memory ' + name + r'[\s)]', decl)
            if m:
                return MemoryForm("import", module=m.group(1), field=m.group(2))
            m = re.search(r'\(memory ' + name + r' \(export "([^"]+)"\) (\d+)', decl)
            if m:
                return MemoryForm("define", export=m.group(1), pages=int(m.group(2)))
        return None

    def _address(self, addr: Expr) -> Expr:
        if addr.ty == self.address_type:
            return addr
        if self.address_type == "i64":
            return addr.widen()
        raise TypeError(f"an {addr.ty} address on a 32-bit memory")

    def load(self, space: str, addr: Expr, ty: str, offset: int) -> Expr:
        off = f" offset={offset}" if offset else ""
        return Expr(f"({_LOAD[ty]} {self._mem(space)}{off} {self._address(addr).wat})", ty)

    def store(self, space: str, addr: Expr, value: Expr, ty: str, offset: int) -> str:
        if value.ty != ty:
            raise TypeError(f"storing {value.ty} as {ty}")
        off = f" offset={offset}" if offset else ""
        return f"({_STORE[ty]} {self._mem(space)}{off} {self._address(addr).wat} {value.wat})"

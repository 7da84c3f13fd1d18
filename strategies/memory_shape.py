"""The shape of a strategy's memories, two parameters every strategy whose modules address
their memories directly takes:

* `page=1`: the memories a module defines, in pages of one byte (the custom-page-sizes
  proposal) instead of wasm's 64 KiB, so each commits what it holds rather than a multiple
  of 64 KiB: the small-device question (WAMR's footprint). Only memories a module defines
  take it (`per-module`'s module memories, `multi-memory`'s private memories).
* `memory64=1`: every memory of the strategy is 64-bit (the memory64 proposal), host-made
  and module-defined alike, and the kernels' addresses and address arithmetic are i64
  (`MemoryLowering.address_type`): what a wasm64 toolchain emits. It costs what the engine
  must check: on a 64-bit memory, wasmtime's guard pages cannot stand in for the bounds
  check of an arbitrary i64 address.

Runtimes without a proposal report the cell `unsupported`, naming the feature.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.core.errors import Unsupported
from harness.plugins.allocator import pages_for
from harness.plugins.params import Param
from harness.plugins.workload import Workload

PAGE_PARAM = Param("page", "choice", "65536", "bytes per page of the memories each module "
                   "defines: 65536 (wasm's page) or 1 (custom-page-sizes: a memory commits "
                   "exactly what it holds)", choices=("65536", "1"))
MEMORY64_PARAM = Param("memory64", "bool", False, "1: every memory 64-bit (memory64), "
                       "addresses and address arithmetic in i64")
PAGES_FEATURE = "custom-page-sizes"
MEMORY64_FEATURE = "memory64"


@dataclass(frozen=True)
class MemoryShape:
    """Page size and address width of the memories one strategy variant declares."""

    page: str = "65536"
    memory64: bool = False

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> MemoryShape:
        """The shape a strategy's parameters ask for (absent parameters: wasm's default)."""
        return cls(str(params.get("page", "65536")), bool(params.get("memory64", False)))

    @property
    def address_type(self) -> str:
        return "i64" if self.memory64 else "i32"

    @property
    def features(self) -> frozenset[str]:
        return (frozenset({PAGES_FEATURE}) if self.page == "1" else frozenset()) | \
            (frozenset({MEMORY64_FEATURE}) if self.memory64 else frozenset())

    def admit(self, workload: Workload) -> None:
        """Refuse, before any work, a tensor too large for the kernels' offsets: in the
        64-bit form they compute an offset within a buffer in i32 and widen it, so a
        buffer reaches 2 GiB (the 32-bit form is bounded by its 4 GiB memory already)."""
        if not self.memory64:
            return
        big = [t.name for t in workload.tensors if t.nbytes >= 1 << 31]
        if big:
            raise Unsupported(f"memory64=1: tensors {big} are 2 GiB or more; the kernels "
                              "compute offsets within a buffer in i32")

    def _index(self) -> str:
        return " i64" if self.memory64 else ""

    def defined(self, name: str, export: str, nbytes: int) -> tuple[str, int]:
        """The WAT of a memory the module defines and exports, holding at least `nbytes`
        (and at least one page), and its initial size in its own pages."""
        if self.page == "1":
            size = max(1, nbytes)
            return f'(memory ${name} (export "{export}"){self._index()} {size} (pagesize 1))', size
        pages = pages_for(nbytes)
        return f'(memory ${name} (export "{export}"){self._index()} {pages})', pages

    def private(self, name: str, pages: int) -> str:
        """The WAT of a memory of wasm pages the module defines and does not export."""
        return f"(memory ${name}{self._index()} {pages})"

    def imported(self, module: str, field: str, name: str, min_pages: int = 0) -> str:
        """The WAT import of a host-made memory (host memories keep wasm's 64 KiB pages)."""
        return f'(import "{module}" "{field}" (memory ${name}{self._index()} {min_pages}))'

"""`page=1`: the memories a module defines, in pages of one byte (the custom-page-sizes
proposal) instead of wasm's 64 KiB, so each commits what it holds rather than a multiple
of 64 KiB: the small-device question (WAMR's footprint). A strategy whose modules define
their own memories takes the parameter (`per-module`'s module memories, `multi-memory`'s
private memories); runtimes without the proposal report the cell `unsupported`, naming
`custom-page-sizes`."""

from __future__ import annotations

from harness.plugins.allocator import pages_for
from harness.plugins.params import Param

PAGE_PARAM = Param("page", "choice", "65536", "bytes per page of the memories each module "
                   "defines: 65536 (wasm's page) or 1 (custom-page-sizes: a memory commits "
                   "exactly what it holds)", choices=("65536", "1"))
FEATURE = "custom-page-sizes"


def defined_memory(name: str, export: str, nbytes: int, page: str) -> tuple[str, int]:
    """The WAT of a memory the module defines and exports, holding at least `nbytes` (and
    at least one page), and its initial size in its own pages."""
    if page == "1":
        size = max(1, nbytes)
        return f'(memory ${name} (export "{export}") {size} (pagesize 1))', size
    pages = pages_for(nbytes)
    return f'(memory ${name} (export "{export}") {pages})', pages


def page_features(page: str) -> frozenset[str]:
    return frozenset({FEATURE}) if page == "1" else frozenset()

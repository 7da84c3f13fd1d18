"""Device allocators: aligned suballocation of tensors inside one memory.

`LifetimeAllocator` reuses the space of intermediates whose lifetimes (first to last
dispatch that touches them) do not overlap — what an ML runtime's device allocator does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.plugins.plan import PAGE
from harness.plugins.workload import Workload

ALIGN = 64  # cache line; also satisfies v128's 16-byte natural alignment


def align_up(n: int, align: int = ALIGN) -> int:
    return (n + align - 1) // align * align


def pages_for(nbytes: int) -> int:
    """Wasm pages needed to hold `nbytes` (at least one)."""
    return max(1, -(-nbytes // PAGE))


@dataclass(frozen=True)
class Block:
    name: str
    offset: int
    size: int
    first: int  # first dispatch index using it (-1: lives from before the first dispatch)
    last: int   # last dispatch index using it (len(dispatches): lives past the last)


class BumpAllocator:
    """Consecutive aligned blocks; nothing is ever reused."""

    def __init__(self, base: int = 0, align: int = ALIGN) -> None:
        self.top = align_up(base, align)
        self.align = align

    def alloc(self, size: int) -> int:
        off = self.top
        self.top = align_up(off + max(size, 1), self.align)
        return off


def lifetimes(workload: Workload) -> dict[str, tuple[int, int]]:
    """(first, last) dispatch index touching each tensor; inputs/weights/outputs span all."""
    n = len(workload.dispatches)
    span: dict[str, tuple[int, int]] = {}
    for i, d in enumerate(workload.dispatches):
        for _, t in d.bindings:
            lo, hi = span.get(t, (i, i))
            span[t] = (min(lo, i), max(hi, i))
    out = {}
    for tensor in workload.tensors:
        if tensor.role == "intermediate" and tensor.name in span:
            out[tensor.name] = span[tensor.name]
        else:
            out[tensor.name] = (-1, n)
    return out


def allocate_with_reuse(items: Sequence[tuple[str, int, int, int]], base: int = 0,
                        align: int = ALIGN) -> tuple[dict[str, int], int]:
    """First-fit placement of (name, size, first, last) blocks, reusing space of blocks
    whose lifetimes do not overlap. Returns offsets and the high-water mark."""
    placed: list[Block] = []
    offsets: dict[str, int] = {}
    # big, long-lived blocks first gives tighter packing
    order = sorted(items, key=lambda it: (-(it[3] - it[2]), -it[1], it[0]))
    for name, size, first, last in order:
        live = sorted((b for b in placed if not (b.last < first or last < b.first)),
                      key=lambda b: b.offset)
        off = align_up(base, align)
        for b in live:
            if off + size <= b.offset:
                break
            off = max(off, align_up(b.offset + b.size, align))
        placed.append(Block(name, off, size, first, last))
        offsets[name] = off
    top = max((b.offset + b.size for b in placed), default=base)
    return offsets, align_up(top, align)

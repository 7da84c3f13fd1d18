"""Memories that grow with a tensor during an inference (a decode's KV cache).

A workload names its growing tensors and the bytes of each that every dispatch uses
(`Workload.extents`). A strategy that holds one in a wasm memory places it last there, so
only the memory's end moves: the memory starts with what the first dispatch needs, and a
`Grow` step before a later dispatch brings it to what that dispatch needs, every instance
live. A strategy that cannot follow a growing tensor refuses the workload
(`refuse_growing`) with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from harness.core.errors import Unsupported
from harness.plugins.allocator import align_up, pages_for
from harness.plugins.plan import Grow
from harness.plugins.workload import Workload


def growing(workload: Workload) -> dict[str, tuple[int, ...]]:
    """The workload's growing tensors -> bytes each dispatch uses, checked: one extent
    per dispatch, none past the tensor's size."""
    out = workload.extents()
    n = len(workload.dispatches)
    for name, ext in out.items():
        size = workload.tensor(name).nbytes
        if len(ext) != n or any(not 0 <= e <= size for e in ext):
            raise ValueError(f"{workload.spec}: extents of {name} must be {n} byte counts "
                             f"in [0, {size}]")
    return out


def refuse_growing(workload: Workload, strategy: str, why: str) -> None:
    """Raise `Unsupported` when `workload` has a growing tensor: `strategy` cannot follow
    it, for reason `why`."""
    grows = workload.extents()
    if grows:
        raise Unsupported(f"{strategy}: {why}; {workload.spec} grows "
                          f"{', '.join(grows)} during an inference")


@dataclass
class GrowingMemory:
    """A memory whose last tensors grow: the pages each dispatch needs, and the Grow steps
    that give them (each asks for more than the memory has by then, so every one grows on
    the first inference and none on a later one)."""

    memory: str
    #: the end of everything in the memory that does not grow
    fixed_top: int
    #: growing tensor -> its offset in the memory
    at: Mapping[str, int]
    extents: Mapping[str, tuple[int, ...]]
    #: pages the memory has once the steps so far ran
    pages: int = field(default=0, init=False)

    @classmethod
    def after(cls, memory: str, top: int, offsets: dict[str, int], workload: Workload,
              tensors: Iterable[str], align: int = 64) -> tuple[GrowingMemory, int]:
        """Place each growing tensor of `tensors` after `top` (the end of everything else
        in `memory`), in order, into `offsets`; the memory and its new top."""
        at: dict[str, int] = {}
        end = top
        for name in tensors:
            offsets[name] = at[name] = end = align_up(end, align)
            end = align_up(end + workload.tensor(name).nbytes, align)
        return cls(memory, top, at, growing(workload) if at else {}), end

    def need(self, k: int) -> int:
        """Bytes dispatch `k` needs the memory to hold."""
        return max([self.fixed_top, *(off + self.extents[t][k] for t, off in self.at.items())])

    def start(self, k: int) -> int:
        """The memory's initial pages: what dispatch `k` (its first user) needs."""
        self.pages = pages_for(self.need(k))
        return self.pages

    def grow_before(self, k: int) -> list[Grow]:
        """The Grow step dispatch `k` needs first (none when the memory holds enough)."""
        pages = pages_for(self.need(k))
        if pages <= self.pages:
            return []
        self.pages = pages
        return [Grow(self.memory, pages)]

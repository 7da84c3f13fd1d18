"""Residency tracking for strategies in which each executable (or device) has its own memory.

Not a strategy itself: `per-module:resident=1` and `per-device` share it. A tensor lives
where it was produced (an input: in its first consumer's memory, where the host uploads
it); a dispatch that reads it from another memory first receives a `Copy` (a staging copy
or a device transfer) into a region of its own memory, and a copy stays valid until the
tensor is written again. Weights are uploaded once at set-up into every memory whose
executable reads them. Outputs are read back from wherever they were last written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.plugins.allocator import BumpAllocator
from harness.plugins.plan import Copy, Read, Region, Write
from harness.plugins.strategy import PlanBuilder, Unsupported
from harness.plugins.workload import Dispatch, Workload


@dataclass
class Residency:
    """Decides, dispatch by dispatch, which regions each memory holds and which copies run."""

    workload: Workload
    pb: PlanBuilder
    #: (tensor, memory id) -> the region holding that tensor's copy in that memory
    regions: dict[tuple[str, str], Region] = field(default_factory=dict)
    #: tensor -> memories whose copy is current
    valid: dict[str, set[str]] = field(default_factory=dict)
    #: tensor -> region of its most recent version (the source of transfers)
    latest: dict[str, Region] = field(default_factory=dict)
    #: the modules bring their weights as data segments (`load=`): no set-up writes
    modules_bring_weights: bool = False

    def weights_to_load(self, d: Dispatch, memory: str) -> list[tuple[str, Region]]:
        """The weights `d` reads that `memory` does not hold yet (call after `bind`, before
        `before`): where `memory`'s module brings them, its data segments."""
        return [(t, self.regions[(t, memory)]) for t in dict.fromkeys(t for _, t in d.bindings)
                if "r" in d.access_of(t) and self.workload.tensor(t).role == "weight"
                and memory not in self.valid.get(t, set())]

    def bind(self, d: Dispatch, memory: str, alloc: BumpAllocator) -> dict[str, int]:
        """Offsets (in `memory`) of every tensor `d` binds, allocating local copies as needed.

        The first region a tensor gets anywhere is its placement (its home)."""
        out: dict[str, int] = {}
        for _, t in d.bindings:
            key = (t, memory)
            if key not in self.regions:
                size = self.workload.tensor(t).nbytes
                region = Region(memory, alloc.alloc(size), size)
                self.regions[key] = region
                if all(p.tensor != t for p in self.pb.placements):
                    self.pb.place(t, memory, region.offset, size)
            out[t] = self.regions[key].offset
        return out

    def before(self, d: Dispatch, memory: str) -> None:
        """Steps that make every tensor `d` reads current in `memory` (call after `bind`)."""
        for t in dict.fromkeys(t for _, t in d.bindings):
            if "r" not in d.access_of(t):
                continue
            region = self.regions[(t, memory)]
            role = self.workload.tensor(t).role
            if role == "weight":
                if memory not in self.valid.setdefault(t, set()):
                    if not self.modules_bring_weights:
                        self.pb.setup.append(Write(t, region))
                    self.valid[t].add(memory)
                continue
            if t not in self.latest:
                if role != "input":
                    raise Unsupported(f"dispatch {d.name} reads {t} before anything writes it")
                self.pb.run.append(Write(t, region))
                self.latest[t], self.valid[t] = region, {memory}
            elif memory not in self.valid[t]:
                self.pb.run.append(Copy(self.latest[t], region))
                self.valid[t].add(memory)

    def after(self, d: Dispatch, memory: str) -> None:
        """Record that `d` wrote its outputs in `memory` (other copies are now stale)."""
        for t in dict.fromkeys(t for _, t in d.bindings):
            if "w" in d.access_of(t):
                self.latest[t], self.valid[t] = self.regions[(t, memory)], {memory}

    def finish(self) -> None:
        """Read every output back from where it was last written."""
        for t in self.workload.by_role("output"):
            if t.name not in self.latest:
                raise Unsupported(f"no dispatch writes output {t.name}")
            self.pb.run.append(Read(t.name, self.latest[t.name]))

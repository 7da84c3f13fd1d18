"""`per-module`: each executable owns its linear memory (WAMR "iwasm" model).

Tensors live in host storage (a plain buffer, not a wasm memory). Before each dispatch
every tensor the kernel reads is copied into the module's own memory, and after it every
tensor the kernel writes is copied back out. Modules cannot see each other's memory.

Trade-off exposed: strong isolation between executables, paid for in bytes copied per
inference (reported, and cross-checked against what the worker actually copied).

Variant `resident=1`: what a runtime that keeps buffers resident in modules would do.
Weights are uploaded once at set-up into every module that reads them; an input is
uploaded straight into its first consumer's memory; an activation lives in the memory of
the module that produced it and is copied only when another module reads it (module to
module, no host round trip); outputs are read from their producer's memory. Per
inference it copies only activations that cross modules (see `strategies.residency`).

Memory numbering: each module defines and exports its only memory (memory 0,
exported as "memory"); nothing is imported.
"""

from __future__ import annotations

from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH, KernelModule
from harness.core.errors import SpecError
from harness.plugins.allocator import BumpAllocator
from harness.plugins.growth import GrowingMemory, growing, refuse_growing
from harness.plugins.params import Param
from harness.plugins.plan import Copy, Device, Instance, Memory, Plan, Region
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Dispatch, Workload
from strategies.memory_shape import MEMORY64_PARAM, PAGE_PARAM, MemoryShape
from strategies.residency import Residency
from strategies.weight_load import LOAD_PARAM, WeightSegment, init_call, with_weights

HOST = "host"


class PerModuleStrategy(Strategy):
    NAME = "per-module"
    ISOLATION = "complete"
    DESCRIPTION = "each module owns its memory; inputs copied in and outputs copied out per dispatch"
    PARAMS = (Param("resident", "bool", False, "1: weights copied into their modules once at "
                    "set-up; activations copied only when they cross modules"), PAGE_PARAM,
              MEMORY64_PARAM, LOAD_PARAM)

    def validate(self) -> None:
        if self.params["load"] != "copy" and not self.params["resident"]:
            raise SpecError("per-module: load= needs resident=1 (without it every tensor, "
                            "weights too, is copied from host storage at each dispatch)")

    def plan(self, workload: Workload) -> Plan:
        shape = MemoryShape.of(self.params)
        shape.admit(workload)
        if self.params["resident"]:
            refuse_growing(workload, self.spec, "resident=1 keeps each tensor where it was "
                           "written and does not follow one that grows")
            return self._plan_resident(workload)
        if shape.page != "65536":
            refuse_growing(workload, self.spec, "page=1 memories grow in pages of one byte, "
                           "which the plan's Grow steps (64 KiB pages) do not count")
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        host = BumpAllocator()
        for tensor in workload.tensors:
            pb.place(tensor.name, HOST, host.alloc(tensor.nbytes), tensor.nbytes)
        pb.memories.append(Memory(id=HOST, device="dev0", kind="buffer", size=host.top,
                                  role="host-storage"))
        grows = growing(workload)
        loaded: dict[str, tuple[KernelModule, dict[str, int], GrowingMemory]] = {}
        for k, d in enumerate(workload.dispatches):
            inst = d.instance
            mem_id = f"{inst}.memory"
            if inst not in loaded:
                loaded[inst] = self._load(pb, workload, d, k, grows, shape)
            km, slots, memory = loaded[inst]
            if memory.at:
                pb.run += memory.grow_before(k)
            # a dispatch of a loaded executable binds its own tensors to the same slots
            staged: dict[str, int] = {}
            for b, t in d.bindings:
                if staged.setdefault(t, slots[b]) != slots[b]:
                    raise ValueError(f"{d.name} binds {t} twice where its executable "
                                     f"{inst} has two buffers")
            # bytes of each tensor the dispatch uses: all, or a growing tensor's extent
            used = {t: grows[t][k] if t in grows else workload.tensor(t).nbytes
                    for t in staged}
            tensors = [t for t in staged if used[t]]
            for t in tensors:
                if "r" in d.access_of(t):
                    pb.run.append(Copy(_prefix(pb.placements_region(t), used[t]),
                                       Region(mem_id, staged[t], used[t])))
            addrs = {b: slots[b] for b, _ in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = slots[SCRATCH]
            pb.run.append(pb.call(inst, km, addrs, d))
            for t in tensors:
                if "w" in d.access_of(t):
                    pb.run.append(Copy(Region(mem_id, staged[t], used[t]),
                                       _prefix(pb.placements_region(t), used[t])))
        pb.host_io(workload)
        return pb.build()

    @staticmethod
    def _load(pb: PlanBuilder, workload: Workload, d: Dispatch, k: int,
              grows: dict[str, tuple[int, ...]],
              shape: MemoryShape) -> tuple[KernelModule, dict[str, int], GrowingMemory]:
        """Load `d`'s executable (its first dispatch, index `k`): its module, the slot of
        each kernel buffer (and scratch) in the module's memory, and that memory. A buffer
        bound to a growing tensor (a decode's KV cache) has the last slot, so the memory
        grows at its end from what dispatch `k` needs."""
        inst = d.instance
        mem_id = f"{inst}.memory"
        local = BumpAllocator(base=d.kernel.reserved_bytes)
        at: dict[str, int] = {}  # tensor -> offset
        for _, t in d.bindings:
            if t not in at and t not in grows:
                at[t] = local.alloc(workload.tensor(t).nbytes)
        if d.kernel.scratch_bytes:
            at[SCRATCH] = local.alloc(d.kernel.scratch_bytes)
        mine = [t for t in dict.fromkeys(t for _, t in d.bindings) if t in grows]
        memory, _ = GrowingMemory.after(mem_id, local.top, at, workload, mine)
        km, pages = _module(d, memory.need(k), shape)
        if mine:
            memory.start(k)
        mod = pb.add_module(km, defined_pages=(pages,))
        pb.instances.append(Instance(inst, mod, "dev0"))
        pb.memories.append(Memory(id=mem_id, device="dev0", kind="export", instance=inst,
                                  export="memory", role="module"))
        slots = {b: at[t] for b, t in d.bindings}
        if d.kernel.scratch_bytes:
            slots[SCRATCH] = at[SCRATCH]
        return km, slots, memory

    def _plan_resident(self, workload: Workload) -> Plan:
        """Weights loaded once, activations copied only where they cross modules."""
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        load, shape = self.params["load"], MemoryShape.of(self.params)
        res = Residency(workload, pb, modules_bring_weights=load != "copy")
        for d in workload.dispatches:
            inst = d.name
            mem_id = f"{inst}.memory"
            local = BumpAllocator(base=d.kernel.reserved_bytes)
            offsets = res.bind(d, mem_id, local)
            addrs = {b: offsets[t] for b, t in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = local.alloc(d.kernel.scratch_bytes)
            km, pages = _module(d, local.top, shape)
            # cow: active segments too, of a module loaded from its precompiled file
            km, segments = with_weights(
                km, [WeightSegment(t, "$mem", r.offset, r.size)
                     for t, r in res.weights_to_load(d, mem_id)],
                "segment" if load == "cow" else load, shape.address_type)
            mod = pb.add_module(km, defined_pages=(pages,), segments=segments,
                                precompiled=load == "cow")
            pb.instances.append(Instance(inst, mod, "dev0"))
            if segments and load == "passive":
                pb.setup.append(init_call(inst))
            pb.memories.append(Memory(id=mem_id, device="dev0", kind="export", instance=inst,
                                      export="memory", role="module"))
            res.before(d, mem_id)
            pb.run.append(pb.call(inst, km, addrs, d))
            res.after(d, mem_id)
        res.finish()
        return pb.build()


def _prefix(region: Region, size: int) -> Region:
    """The first `size` bytes of `region`."""
    return Region(region.memory, region.offset, size)


def _module(d: Dispatch, nbytes: int, shape: MemoryShape) -> tuple[KernelModule, int]:
    """The dispatch's module: one defined, exported memory of `nbytes` for its staged
    buffers (in the pages and address width of `shape`: `strategies.memory_shape`)."""
    decl, pages = shape.defined("mem", "memory", nbytes)
    lowering = DirectLowering({"heap": "$mem", SCRATCH: "$mem"}, [decl],
                              frozenset({"exported-memory"}) | shape.features,
                              shape.address_type)
    spaces = {b.name: "heap" for b in d.kernel.buffers} | {SCRATCH: SCRATCH}
    return build_kernel_module(d.kernel, lowering, spaces), pages

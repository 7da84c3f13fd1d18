"""`shared`: one growable memory created by the device (host), imported by every module.

Models a runtime that gives all executables on a device a single linear memory: the
device allocator suballocates every tensor inside it (aligned, reusing the space of
intermediates whose lifetimes do not overlap), and each module gets its own scratch
region. Buffers cross executables by address, so an inference copies nothing.

Trade-off exposed: zero copies, but no isolation — any executable can read or write
any tensor (and any other executable's scratch) in the device memory.

Memory numbering: the device heap is the module's only memory, imported as memory 0
(`env.heap`); scratch is a region of the same memory.
"""

from __future__ import annotations

from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH, KernelModule
from harness.plugins.allocator import align_up, allocate_with_reuse, lifetimes, pages_for
from harness.plugins.growth import GrowingMemory, growing
from harness.plugins.plan import Device, Import, Instance, Memory, Plan
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Workload
from strategies.concurrent import (
    SPLIT_PARAM,
    THREADS_PARAM,
    ConcurrentPlanner,
    check_threads,
)
from strategies.memory_shape import MEMORY64_PARAM, MemoryShape
from strategies.weight_load import (
    LOAD_PARAM,
    WeightSegment,
    first_reads,
    init_call,
    refuse_cow,
    with_weights,
)


class SharedStrategy(Strategy):
    NAME = "shared"
    ISOLATION = "none"
    DESCRIPTION = "one host-created memory imported by every module; zero copies, no isolation"
    PARAMS = (MEMORY64_PARAM, LOAD_PARAM, THREADS_PARAM, SPLIT_PARAM)

    def validate(self) -> None:
        check_threads(self)
        if self.params["load"] == "cow":
            refuse_cow(self.NAME, "the device heap")

    def plan(self, workload: Workload) -> Plan:
        if self.params["threads"]:
            return ConcurrentPlanner(self.spec, self.params["threads"], self.params["split"],
                                     private=False).plan(workload)
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        grows = growing(workload)
        spans = lifetimes(workload)
        items = [(t.name, t.nbytes, *spans[t.name]) for t in workload.tensors
                 if t.name not in grows]
        # above what a kernel keeps for itself (a C kernel's stack)
        reserved = max((d.kernel.reserved_bytes for d in workload.dispatches), default=0)
        offsets, top = allocate_with_reuse(items, base=reserved)
        # each executable's scratch lives after the tensors, one private region per module
        scratch_at: dict[str, int] = {}
        for d in workload.dispatches:
            if d.kernel.scratch_bytes and d.instance not in scratch_at:
                scratch_at[d.instance] = top
                top = align_up(top + d.kernel.scratch_bytes)
        # a growing tensor (a decode's KV cache) last: the heap grows at its end
        heap, top = GrowingMemory.after("heap", top, offsets, workload, grows)
        shape = MemoryShape.of(self.params)
        shape.admit(workload)
        pb.memories.append(Memory(id="heap", device="dev0", kind="host",
                                  min_pages=heap.start(0) if grows else pages_for(top),
                                  role="heap", memory64=shape.memory64))
        for t in workload.tensors:
            pb.place(t.name, "heap", offsets[t.name], t.nbytes)
        lowering = DirectLowering({"heap": "$heap", SCRATCH: "$heap"},
                                  [shape.imported("env", "heap", "heap")],
                                  frozenset({"imported-memory"}) | shape.features,
                                  shape.address_type)
        load = self.params["load"]
        firsts = first_reads(workload)
        kms: dict[str, KernelModule] = {}
        for k, d in enumerate(workload.dispatches):
            inst = d.instance
            if inst not in kms:
                spaces = {b.name: "heap" for b in d.kernel.buffers} | {SCRATCH: SCRATCH}
                km = build_kernel_module(d.kernel, lowering, spaces)
                km, segments = with_weights(
                    km, [WeightSegment(t, "$heap", offsets[t], workload.tensor(t).nbytes)
                         for t in firsts[inst]], load, shape.address_type)
                mod = pb.add_module(km, segments=segments)
                pb.instances.append(Instance(inst, mod, "dev0",
                                             (Import("env", "heap", "memory", "heap"),)))
                if segments and load == "passive":
                    pb.setup.append(init_call(inst))
                kms[inst] = km
            addrs = {b: offsets[t] for b, t in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = scratch_at[inst]
            if grows:
                pb.run += heap.grow_before(k)
            pb.run.append(pb.call(inst, kms[inst], addrs, d))
        pb.host_io(workload, weights=load == "copy")
        return pb.build()

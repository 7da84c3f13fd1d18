"""`multi-memory`: each module defines a private memory and imports the device heap.

Models a runtime that keeps every tensor in one device heap (host-created, imported by
every executable, suballocated like `shared`'s) while each executable's own state — its
stack and scratch — lives in a memory only that module can address. Kernels name the
memory on every access (`f32.load $heap`, `f32.load $priv`), so a module cannot reach
another module's private memory at all. Variant `weights=separate`: weights live in a
third memory, also host-created and imported, written once at set-up (a read-only
constants segment in a real runtime; nothing here enforces read-only).

Memory numbering (imports come first): the heap is memory 0, the weights memory is
memory 1 when `weights=separate`, and the module's private memory is the last index
(1, or 2 with separate weights). The private memory is exported as `private` so the host
can measure it; scratch starts at its offset 0. Every private memory has at least one
page (a real toolchain puts the shadow stack there).

Trade-off exposed: zero copies per inference like `shared`, with executables' private
state isolated — the tensors in the heap are still visible to every module. Needs the
multi-memory proposal (a runtime without it reports `unsupported: multi-memory`); costs
one private memory per module (footprint) and, on some runtimes, an extra base-pointer
load per access to an imported memory.
"""

from __future__ import annotations

import dataclasses

from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH, KernelModule
from harness.core.errors import SpecError
from harness.plugins.allocator import BumpAllocator, allocate_with_reuse, lifetimes, pages_for
from harness.plugins.growth import GrowingMemory, growing, refuse_growing
from harness.plugins.params import Param
from harness.plugins.plan import PAGE, Device, Import, Instance, Memory, Plan
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Workload
from harness.toolchain import binaryen
from strategies.concurrent import (
    SPLIT_PARAM,
    THREADS_PARAM,
    ConcurrentPlanner,
    check_threads,
)
from strategies.memory_shape import MEMORY64_PARAM, PAGE_PARAM, MemoryShape
from strategies.merged_kernel import merged_module
from strategies.weight_load import (
    LOAD_PARAM,
    WeightSegment,
    first_reads,
    init_call,
    refuse_cow,
    with_weights,
)

HEAP, WEIGHTS = "heap", "weights"
FEATURES = frozenset({"imported-memory", "multi-memory"})


class MultiMemoryStrategy(Strategy):
    NAME = "multi-memory"
    ISOLATION = "private state"
    DESCRIPTION = ("device heap imported as memory 0, private scratch memory per module; "
                   "zero copies, private state isolated")
    PARAMS = (Param("weights", "choice", "heap", "heap: weights share the device heap; "
                    "separate: weights in a third imported memory", choices=("heap", "separate")),
              Param("built", "choice", "generator", "generator: the code generator writes "
                    "each module with both memories; merge: a toolchain=clang kernel of one "
                    "memory merged with heap-copying glue by Binaryen's wasm-merge",
                    choices=("generator", "merge")),
              Param("lowered", "bool", False, "1: each module rewritten to one memory by "
                    "Binaryen's --multi-memory-lowering (runs where multi-memory does not; "
                    "gives up the separation between the memories)"),
              PAGE_PARAM, MEMORY64_PARAM, LOAD_PARAM, THREADS_PARAM, SPLIT_PARAM)

    @property
    def isolation(self) -> str:
        # lowered, a module's private memory is a range of the one memory, unchecked
        return "none" if self.params["lowered"] else self.ISOLATION

    def validate(self) -> None:
        check_threads(self)
        p = self.params
        if p["lowered"] and p["page"] != "65536":
            raise SpecError("multi-memory: lowered=1 lays the private memories after the heap "
                            "in its 64 KiB pages; page=1 is for native multi-memory")
        if p["built"] == "merge" and p["page"] != "65536":
            raise SpecError("multi-memory: page=1 is not for built=merge, which keeps the "
                            "kernel's memory as clang "
                            "links it (wasm-ld has no custom page sizes)")
        if p["load"] == "cow":
            refuse_cow(self.NAME, "the device heap or the weights memory")
        if p["load"] != "copy" and (p["built"] == "merge" or p["lowered"]):
            raise SpecError("multi-memory: load= is for the generator's native modules (a "
                            "merged or lowered module keeps the toolchain's data as built)")
        if p["lowered"] and p["memory64"]:
            raise SpecError("multi-memory: lowered=1 is for 32-bit memories (Binaryen 132's "
                            "--multi-memory-lowering builds its helpers in i32: 'heap_size: "
                            "i64 != i32')")
        if p["built"] == "merge" and p["memory64"]:
            raise SpecError("multi-memory: memory64=1 is not for built=merge, whose kernel "
                            "clang builds for wasm32")
        if p["built"] == "merge" and (p["lowered"] or p["weights"] == "separate"):
            raise SpecError("multi-memory: built=merge keeps the weights in the heap and is "
                            "not lowered (Binaryen lowers only modules that export no memory "
                            "but the first, and the merged kernel exports its own)")

    def plan(self, workload: Workload) -> Plan:
        if self.params["threads"]:
            return ConcurrentPlanner(self.spec, self.params["threads"], self.params["split"],
                                     private=True).plan(workload)
        if self.params["built"] == "merge":
            return self._plan_merged(workload)
        separate = self.params["weights"] == "separate"
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        pb.requires |= FEATURES
        in_weights = {t.name for t in workload.by_role("weight")} if separate else set()
        spans = lifetimes(workload)
        lowered = self.params["lowered"]
        if lowered:
            refuse_growing(workload, self.spec, "lowered, the private memories lie after the "
                           "heap's initial pages, where the heap would grow")
        grows = growing(workload)
        offsets, top = allocate_with_reuse([(t.name, t.nbytes, *spans[t.name])
                                            for t in workload.tensors
                                            if t.name not in in_weights and t.name not in grows])
        # a growing tensor (a decode's KV cache) last: the heap grows at its end
        heap, top = GrowingMemory.after(HEAP, top, offsets, workload, grows)
        shape = MemoryShape.of(self.params)
        shape.admit(workload)
        heap_pages, private_max = heap.start(0) if grows else pages_for(top), 0
        if lowered:
            # the lowering lays the private memory after the heap's declared initial size:
            # it must be the heap's real size, and the heap must hold both (below)
            private_max = max(pages_for(d.kernel.scratch_bytes) for d in workload.dispatches)
            pb.requires -= {"multi-memory"}
            pb.private_base = heap_pages * PAGE
            pb.notes = ("lowered by Binaryen's --multi-memory-lowering: each module's private "
                        f"memory is pages {heap_pages}.. of the heap, unchecked")
        pb.memories.append(Memory(id=HEAP, device="dev0", kind="host",
                                  min_pages=heap_pages + (private_max if lowered else 0),
                                  role="heap", memory64=shape.memory64))
        decls = [shape.imported("env", "heap", "heap", heap_pages if lowered else 0)]
        imports = [Import("env", "heap", "memory", HEAP)]
        if separate:
            wal = BumpAllocator()
            for name in sorted(in_weights, key=[t.name for t in workload.tensors].index):
                offsets[name] = wal.alloc(workload.tensor(name).nbytes)
            pb.memories.append(Memory(id=WEIGHTS, device="dev0", kind="host",
                                      min_pages=pages_for(wal.top), role="weights",
                                      memory64=shape.memory64))
            decls.append(shape.imported("env", "weights", "weights"))
            imports.append(Import("env", "weights", "memory", WEIGHTS))
        for t in workload.tensors:
            pb.place(t.name, WEIGHTS if t.name in in_weights else HEAP, offsets[t.name], t.nbytes)
        load = self.params["load"]
        firsts = first_reads(workload)
        kms: dict[str, KernelModule] = {}
        for k, d in enumerate(workload.dispatches):
            inst = d.instance
            addrs = {b: offsets[t] for b, t in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = 0
            if grows:
                pb.run += heap.grow_before(k)
            if inst in kms:  # another dispatch of a loaded executable
                pb.run.append(pb.call(inst, kms[inst], addrs, d))
                continue
            if lowered:
                pages = pages_for(d.kernel.scratch_bytes)
                private = shape.private("priv", pages)
            else:
                private, pages = shape.defined("priv", "private", d.kernel.scratch_bytes)
            lowering = DirectLowering(
                {HEAP: "$heap", WEIGHTS: "$weights", SCRATCH: "$priv"},
                [*decls, private], FEATURES | shape.features, shape.address_type)
            spaces = {b: WEIGHTS if t in in_weights else HEAP for b, t in d.bindings}
            km = build_kernel_module(d.kernel, lowering, spaces | {SCRATCH: SCRATCH})
            km, segments = with_weights(
                km, [WeightSegment(t, "$weights" if t in in_weights else "$heap", offsets[t],
                                   workload.tensor(t).nbytes) for t in firsts[inst]],
                load, shape.address_type)
            if lowered:
                km = dataclasses.replace(km, wasm=binaryen.lower_multi_memory(km.wasm),
                                         name=f"{km.name}_lowered",
                                         features=km.features - {"multi-memory"})
            mod = pb.add_module(km, defined_pages=() if lowered else (pages,),
                                segments=segments)
            kms[inst] = km
            pb.instances.append(Instance(inst, mod, "dev0", tuple(imports)))
            if segments and load == "passive":
                pb.setup.append(init_call(inst))
            if not lowered:
                pb.memories.append(Memory(id=f"{inst}.private", device="dev0", kind="export",
                                          instance=inst, export="private", role="private"))
            pb.run.append(pb.call(inst, km, addrs, d))
        pb.host_io(workload, weights=load == "copy")
        return pb.build()

    def _plan_merged(self, workload: Workload) -> Plan:
        """Each dispatch's clang kernel merged with its heap glue (`strategies.merged_kernel`)."""
        refuse_growing(workload, self.spec, "a merged module is one dispatch's clang kernel")
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        pb.requires |= FEATURES | {"bulk-memory"}
        spans = lifetimes(workload)
        offsets, top = allocate_with_reuse([(t.name, t.nbytes, *spans[t.name])
                                            for t in workload.tensors])
        pb.memories.append(Memory(id=HEAP, device="dev0", kind="host",
                                  min_pages=pages_for(top), role="heap"))
        for t in workload.tensors:
            pb.place(t.name, HEAP, offsets[t.name], t.nbytes)
        copied = 0
        for d in workload.dispatches:
            km, pages, n = merged_module(workload, d)
            copied += n
            mod = pb.add_module(km, defined_pages=(pages,))
            inst = d.name
            pb.instances.append(Instance(inst, mod, "dev0",
                                         (Import("env", "heap", "memory", HEAP),)))
            pb.memories.append(Memory(id=f"{inst}.private", device="dev0", kind="export",
                                      instance=inst, export="memory", role="private"))
            pb.run.append(pb.call(inst, km, {b: offsets[t] for b, t in d.bindings}, d))
        pb.notes = (f"merged by Binaryen's wasm-merge: the glue copies {copied} bytes per "
                    "inference between the heap and the kernels' memories inside the module "
                    "(not counted by the host)")
        pb.host_io(workload)
        return pb.build()

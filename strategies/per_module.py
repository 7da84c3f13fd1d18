"""`per-module`: each executable owns its linear memory (WAMR "iwasm" model).

Tensors live in host storage (a plain buffer, not a wasm memory). Before each dispatch
every tensor the kernel reads is copied into the module's own memory, and after it every
tensor the kernel writes is copied back out. Modules cannot see each other's memory.

Trade-off exposed: strong isolation between executables, paid for in bytes copied per
inference (reported, and cross-checked against what the worker actually copied).

Memory numbering: each module defines and exports its only memory (memory 0,
exported as "memory"); nothing is imported.
"""

from __future__ import annotations

from harness.allocator import BumpAllocator, pages_for
from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH
from harness.plan import Copy, Device, Instance, Memory, Plan, Read, Region, Write
from harness.strategy import PlanBuilder, Strategy
from harness.workload import Workload

HOST = "host"


class PerModuleStrategy(Strategy):
    NAME = "per-module"
    DESCRIPTION = "each module owns its memory; inputs copied in and outputs copied out per dispatch"

    def plan(self, workload: Workload) -> Plan:
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        pb.devices.append(Device("dev0"))
        host = BumpAllocator()
        for tensor in workload.tensors:
            pb.place(tensor.name, HOST, host.alloc(tensor.nbytes), tensor.nbytes)
        pb.memories.append(Memory(id=HOST, device="dev0", kind="buffer", size=host.top,
                                  role="host-storage"))
        for d in workload.dispatches:
            local = BumpAllocator()
            addrs: dict[str, int] = {}
            staged: dict[str, int] = {}
            for b, t in d.bindings:
                if t not in staged:
                    staged[t] = local.alloc(workload.tensor(t).nbytes)
                addrs[b] = staged[t]
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = local.alloc(d.kernel.scratch_bytes)
            pages = pages_for(local.top)
            lowering = DirectLowering(
                {"heap": "$mem", SCRATCH: "$mem"},
                [f'(memory $mem (export "memory") {pages})'],
                frozenset({"exported-memory"}))
            spaces = {b.name: "heap" for b in d.kernel.buffers} | {SCRATCH: SCRATCH}
            km = build_kernel_module(d.kernel, lowering, spaces)
            mod = pb.add_module(km, defined_pages=(pages,))
            inst = d.name
            mem_id = f"{inst}.memory"
            pb.instances.append(Instance(inst, mod, "dev0"))
            pb.memories.append(Memory(id=mem_id, device="dev0", kind="export", instance=inst,
                                      export="memory", role="module"))
            for t, off in staged.items():
                if "r" in d.access_of(t):
                    pb.run.append(Copy(pb.placements_region(t), Region(mem_id, off,
                                                                       workload.tensor(t).nbytes)))
            pb.run.append(pb.call(inst, km, addrs, d.name))
            for t, off in staged.items():
                if "w" in d.access_of(t):
                    pb.run.append(Copy(Region(mem_id, off, workload.tensor(t).nbytes),
                                       pb.placements_region(t)))
        for w in workload.by_role("weight"):
            pb.setup.append(Write(w.name, pb.placements_region(w.name)))
        pb.run[:0] = [Write(i.name, pb.placements_region(i.name))
                      for i in workload.by_role("input")]
        pb.run += [Read(o.name, pb.placements_region(o.name)) for o in workload.by_role("output")]
        return pb.build()

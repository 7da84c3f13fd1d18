"""`per-device`: one executable per device, each device with its own store and memory.

Models a runtime that gives every executable its own device: a wasm store (and, with
`engine=own`, its own engine, so its module is compiled for that engine alone) holding
one host-created memory, the device memory the executable imports. A tensor lives on the
device of the executable that produces it (an input: on its first consumer's device,
where the host uploads it); a consumer on another device receives a transfer — a `Copy`
from the producer's device memory into its own, by raw pointer across stores — before
it runs. Weights are uploaded at set-up to every device whose executable reads them.

Memory numbering: the device memory is the module's only memory, imported as memory 0
(`env.heap`); the executable's scratch is a region of it after its tensors.

Trade-off exposed: full separation of executables (stores, optionally engines), paid in
transfers per inference (bytes copied) and in per-device set-up and footprint: one
compile per module per engine (`compile_s` is keyed `module@device` with `engine=own`),
one instantiation per device, and one memory per device (`linear_bytes_by_device`).
"""

from __future__ import annotations

from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH
from harness.core.errors import Unsupported
from harness.plugins.allocator import BumpAllocator, pages_for
from harness.plugins.growth import refuse_growing
from harness.plugins.params import Param
from harness.plugins.plan import Device, Import, Instance, Memory, Plan
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Workload
from strategies.memory_shape import MEMORY64_PARAM, MemoryShape
from strategies.residency import Residency
from strategies.weight_load import (
    LOAD_PARAM,
    WeightSegment,
    init_call,
    refuse_cow,
    with_weights,
)


def _lowering(shape: MemoryShape) -> DirectLowering:
    return DirectLowering({"heap": "$heap", SCRATCH: "$heap"},
                          [shape.imported("env", "heap", "heap")],
                          frozenset({"imported-memory"}) | shape.features, shape.address_type)


class PerDeviceStrategy(Strategy):
    NAME = "per-device"
    ISOLATION = "complete"
    DESCRIPTION = ("one device (store, memory, optionally engine) per executable; tensors "
                   "transferred between devices")
    PARAMS = (Param("engine", "choice", "own", "own: an engine per device (compiled per "
                    "device); shared: one engine, a store per device",
                    choices=("own", "shared")), MEMORY64_PARAM, LOAD_PARAM)

    def validate(self) -> None:
        if self.params["load"] == "cow":
            refuse_cow(self.NAME, "each device's memory")

    def plan(self, workload: Workload) -> Plan:
        refuse_growing(workload, self.spec, "each dispatch is a device of its own, and a "
                       "tensor that grows would be transferred whole between them")
        if any(d.executable for d in workload.dispatches):
            raise Unsupported(f"{self.spec}: one device per dispatch cannot hold an "
                              "executable that serves several dispatches")
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        load = self.params["load"]
        res = Residency(workload, pb, modules_bring_weights=load != "copy")
        own = self.params["engine"] == "own"
        shape = MemoryShape.of(self.params)
        shape.admit(workload)
        for i, d in enumerate(workload.dispatches):
            dev = f"dev{i}"
            mem_id = f"{dev}.heap"
            pb.devices.append(Device(dev, engine=dev if own else "default"))
            local = BumpAllocator(base=d.kernel.reserved_bytes)
            offsets = res.bind(d, mem_id, local)
            addrs = {b: offsets[t] for b, t in d.bindings}
            if d.kernel.scratch_bytes:
                addrs[SCRATCH] = local.alloc(d.kernel.scratch_bytes)
            pb.memories.append(Memory(id=mem_id, device=dev, kind="host",
                                      min_pages=pages_for(local.top), role="device",
                                      memory64=shape.memory64))
            spaces = {b.name: "heap" for b in d.kernel.buffers} | {SCRATCH: SCRATCH}
            km = build_kernel_module(d.kernel, _lowering(shape), spaces)
            km, segments = with_weights(
                km, [WeightSegment(t, "$heap", r.offset, r.size)
                     for t, r in res.weights_to_load(d, mem_id)], load, shape.address_type)
            mod = pb.add_module(km, segments=segments)
            pb.instances.append(Instance(d.name, mod, dev,
                                         (Import("env", "heap", "memory", mem_id),)))
            if segments and load == "passive":
                pb.setup.append(init_call(d.name))
            res.before(d, mem_id)
            pb.run.append(pb.call(d.name, km, addrs, d))
            res.after(d, mem_id)
        res.finish()
        return pb.build()

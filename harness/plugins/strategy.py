"""`Strategy`: the plugin interface that turns a Workload into a Plan, plus `PlanBuilder`.

A strategy decides where every tensor lives, which memories exist and who owns them,
how each kernel addresses its buffers (its `MemoryLowering`), and which copies or host
calls an inference needs. Every strategy module documents what it models.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from harness.codegen.kernel import KernelModule
from harness.core.errors import Unsupported
from harness.plugins.plan import (
    Call,
    Device,
    HostFunc,
    Instance,
    Memory,
    Module,
    Placement,
    Plan,
    Read,
    Region,
    Step,
    Write,
)
from harness.plugins.registry import Plugin
from harness.plugins.workload import Dispatch, Workload

__all__ = ["PlanBuilder", "Strategy", "Unsupported"]


class Strategy(Plugin):
    """Base of every memory-strategy plugin."""

    #: what one executable can reach of another's data, by construction: "none" (one memory
    #: holds everything), "private state" (tensors shared, stack and scratch private),
    #: "host-checked" (every access goes through the host, which checks its window) or
    #: "complete" (separate memories; tensors cross by copy or transfer). `membench
    #: isolation` measures it; reports name the isolating strategies from this.
    ISOLATION: ClassVar[str] = "none"

    @property
    def isolation(self) -> str:
        """This variant's isolation class (ISOLATION, unless a parameter gives it up)."""
        return self.ISOLATION

    @abstractmethod
    def plan(self, workload: Workload) -> Plan:
        """The complete plan for running `workload` under this strategy."""


@dataclass
class PlanBuilder:
    """Mutable accumulator a strategy fills, then freezes into a validated Plan."""

    workload: str
    strategy: str
    devices: list[Device] = field(default_factory=list)
    memories: list[Memory] = field(default_factory=list)
    modules: list[Module] = field(default_factory=list)
    instances: list[Instance] = field(default_factory=list)
    placements: list[Placement] = field(default_factory=list)
    host_funcs: list[HostFunc] = field(default_factory=list)
    setup: list[Step] = field(default_factory=list)
    run: list[Step] = field(default_factory=list)
    requires: set[str] = field(default_factory=set)
    expected: dict[str, int] = field(default_factory=dict)
    notes: str = ""
    private_base: int = 0
    requests: int = 1

    def add_module(self, km: KernelModule, name: str | None = None,
                   defined_pages: tuple[int, ...] = (), segments: tuple[str, ...] = (),
                   precompiled: bool = False) -> str:
        """Add a module (once per distinct binary) and return its plan name.

        The same kernel lowered differently (another memory size, another space for a
        buffer) is another module: it gets the name with a `~N` suffix."""
        base = name or km.name
        mod_name, n = base, 1
        while True:
            same = next((m for m in self.modules if m.name == mod_name), None)
            if same is None:
                self.modules.append(Module(name=mod_name, wasm=km.wasm, features=km.features,
                                           defined_pages=defined_pages, segments=segments,
                                           precompiled=precompiled))
                break
            if (same.wasm, same.segments, same.precompiled) == (km.wasm, segments, precompiled):
                break
            n += 1
            mod_name = f"{base}~{n}"
        self.requires |= set(km.features)
        if precompiled:
            self.requires.add("module-image")
        return mod_name

    def place(self, tensor: str, memory: str, offset: int, size: int) -> Region:
        region = Region(memory, offset, size)
        self.placements.append(Placement(tensor, region))
        return region

    def placements_region(self, tensor: str) -> Region:
        for p in self.placements:
            if p.tensor == tensor:
                return p.region
        raise KeyError(f"tensor {tensor!r} has not been placed")

    def host_io(self, workload: Workload, weights: bool = True) -> None:
        """Weights written once at set-up (unless `weights` is false: the modules bring
        them), inputs written first and outputs read last in every inference, all at each
        tensor's home placement."""
        if weights:
            self.setup += [Write(t.name, self.placements_region(t.name))
                           for t in workload.by_role("weight")]
        self.run[:0] = [Write(t.name, self.placements_region(t.name))
                        for t in workload.by_role("input")]
        self.run += [Read(t.name, self.placements_region(t.name))
                     for t in workload.by_role("output")]

    def call(self, instance: str, km: KernelModule, addresses: dict[str, int],
             dispatch: Dispatch) -> Call:
        """A call step of `dispatch` passing each kernel argument, in the kernel's order:
        a buffer's or scratch's address from `addresses`, a scalar's value from the
        dispatch."""
        values = addresses | dict(dispatch.scalars)
        return Call(instance=instance, export=km.export,
                    args=tuple(values[a] for a in km.args), dispatch=dispatch.name,
                    arg_type=km.address_type)

    def build(self) -> Plan:
        plan = Plan(
            workload=self.workload, strategy=self.strategy, devices=tuple(self.devices),
            memories=tuple(self.memories), modules=tuple(self.modules),
            instances=tuple(self.instances), placements=tuple(self.placements),
            setup=tuple(self.setup), run=tuple(self.run), host_funcs=tuple(self.host_funcs),
            requires=frozenset(self.requires), expected=tuple(sorted(self.expected.items())),
            notes=self.notes, private_base=self.private_base, requests=self.requests,
        )
        plan.validate()
        return plan

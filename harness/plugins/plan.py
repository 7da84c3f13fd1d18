"""`Plan`: pure, JSON-serialisable data — the only thing a runtime ever sees.

A plan lists devices, memories, modules (wasm bytes), instances with their import
bindings, where each tensor lives, and two step lists: `setup` (once: weights) and
`run` (per inference). Every copy and host call is visible as data, so bytes copied and
calls per inference are counted from the plan and cross-checked against what the
worker actually did.

Memory kinds:
  * `host`   — a wasm memory the host creates (and modules import);
  * `export` — a memory a module defines, reached as export `export` of `instance`;
  * `buffer` — plain host storage that is not a wasm memory (per-module's host copies).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.core.errors import PlanError
from harness.plugins.wasmbin import module_info

MEMORY_KINDS = ("host", "export", "buffer")
PAGE = 65536


@dataclass(frozen=True)
class Device:
    """A device: one wasm store. Devices sharing `engine` share a compiled-code engine.

    `agent` is the thread (or JavaScript worker) that calls into the device's instances:
    a plan of several agents gives each its own devices (a wasm store is used by one thread
    at a time) and reaches their common data through shared memories."""

    name: str
    engine: str = "default"
    agent: int = 0


@dataclass(frozen=True)
class Memory:
    id: str
    device: str
    kind: str
    min_pages: int = 0
    max_pages: int | None = None
    shared: bool = False
    instance: str | None = None
    export: str | None = None
    size: int = 0  # bytes, for kind "buffer"
    role: str = ""  # what the strategy uses it for ("heap", "private", "weights", ...)
    memory64: bool = False  # a 64-bit memory (memory64): kind "host" makes it so

    def capacity(self) -> int | None:
        """Bytes addressable at plan time (None for exported memories: known after instantiation)."""
        if self.kind == "buffer":
            return self.size
        if self.kind == "host":
            return self.min_pages * PAGE
        return None


@dataclass(frozen=True)
class Module:
    name: str
    wasm: bytes = field(repr=False)
    features: frozenset[str] = frozenset()
    #: pages of each memory the module itself defines, in definition order (for footprint)
    defined_pages: tuple[int, ...] = ()
    #: the tensor whose bytes fill each of the module's data segments, in segment order: the
    #: module is built with them empty and the worker fills them (`wasmbin.fill_data`)
    segments: tuple[str, ...] = ()
    #: loaded from an engine-precompiled file, mapped (wasmtime's `Module.deserialize_file`:
    #: the memory image of its data segments is then mapped copy-on-write, not copied)
    precompiled: bool = False


@dataclass(frozen=True)
class Import:
    """Binds one import of a module. `kind` "memory": `target` is a memory id;
    kind "func": `target` is "host:<host func id>" or "<instance>.<export>"."""

    module: str
    field: str
    kind: str
    target: str


@dataclass(frozen=True)
class HostFunc:
    """A host function runtimes implement natively in their embedding language.

    `kind` names its semantics from a fixed catalogue (see `harness.runtimes.hostfuncs`); `args`
    are kind-specific settings (which memory is the heap, ...).
    """

    id: str
    kind: str
    device: str
    args: tuple[tuple[str, str], ...] = ()

    def arg(self, key: str) -> str:
        return dict(self.args)[key]


@dataclass(frozen=True)
class Instance:
    name: str
    module: str
    device: str
    imports: tuple[Import, ...] = ()


@dataclass(frozen=True)
class Region:
    memory: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Placement:
    """Where a tensor lives (its home; per-module also has staged copies in modules)."""

    tensor: str
    region: Region


@dataclass(frozen=True)
class Window:
    """A heap range a host function may touch during one call (isolation checks)."""

    region: Region
    writable: bool


@dataclass(frozen=True)
class Write:
    """Host data of `tensor` into `dst` (upload of an input or a weight)."""

    tensor: str
    dst: Region
    op: str = "write"


@dataclass(frozen=True)
class Copy:
    """Bytes from one region to another (staging, transfer between devices)."""

    src: Region
    dst: Region
    op: str = "copy"


@dataclass(frozen=True)
class Call:
    """Call `export` of `instance` with `args` of `arg_type` (i32, or i64 for a memory64
    module's addresses); `dispatch` names the workload dispatch."""

    instance: str
    export: str
    args: tuple[int, ...]
    dispatch: str = ""
    windows: tuple[Window, ...] = ()
    op: str = "call"
    arg_type: str = "i32"


@dataclass(frozen=True)
class Read:
    """Bytes of `src` back to the host as tensor `tensor` (download of an output)."""

    tensor: str
    src: Region
    op: str = "read"


@dataclass(frozen=True)
class Count:
    """Add the counter a wasm instance keeps in `src` to the worker's counter `counter`.

    `src` holds a little-endian unsigned integer of `src.size` (4 or 8) bytes; the worker
    adds it to `counter` and zeroes `src`. This is how counts made inside wasm (e.g. host
    calls served by a wasm host shim) reach the plan-versus-worker cross-check.
    """

    counter: str
    src: Region
    op: str = "count"


@dataclass(frozen=True)
class Grow:
    """Grow memory `memory` to `pages` pages, while every instance stays live: the host's
    grow of a memory it made, or of one a module exports, or a host buffer reallocated to
    `pages` * 64 KiB (its bytes kept). A no-op when the memory has them already, so only
    the first inference grows (memories never shrink).

    Everything that addresses the memory afterwards must read its base and length again:
    an engine without a reservation moves a memory that grows, and a JavaScript memory's
    `ArrayBuffer` is replaced (a view made before is detached: `harness.runtimes.js_plan`).
    The worker counts the grows that happened and times them (`LoadedPlan.grow_stats`)."""

    memory: str
    pages: int
    op: str = "grow"


@dataclass(frozen=True)
class Parallel:
    """Branch i's calls run on agent i, every branch at once; the step ends when every
    branch has ended. It is the only place agents synchronise: a call takes no lock, so
    what the branches' kernels touch at once is the strategy's to keep apart (disjoint
    output rows, one scratch region per agent). The worker runs branch 0 on its own thread
    and branch i on agent i's thread, pinned to a CPU of its own."""

    branches: tuple[tuple[Call, ...], ...]
    op: str = "parallel"


Step = Write | Copy | Call | Read | Count | Grow | Parallel
_STEP_TYPES: dict[str, type] = {"write": Write, "copy": Copy, "call": Call, "read": Read,
                                "count": Count, "grow": Grow, "parallel": Parallel}


def calls_of(steps: tuple[Step, ...]) -> list[Call]:
    """Every Call of `steps`, those inside Parallel steps included."""
    out: list[Call] = []
    for s in steps:
        if isinstance(s, Call):
            out.append(s)
        elif isinstance(s, Parallel):
            out += [c for branch in s.branches for c in branch]
    return out


@dataclass(frozen=True)
class Plan:
    workload: str
    strategy: str
    devices: tuple[Device, ...]
    memories: tuple[Memory, ...]
    modules: tuple[Module, ...]
    instances: tuple[Instance, ...]
    placements: tuple[Placement, ...]
    setup: tuple[Step, ...]
    run: tuple[Step, ...]
    host_funcs: tuple[HostFunc, ...] = ()
    #: capabilities a runtime must have (from the modules' features and the memory layout)
    requires: frozenset[str] = frozenset()
    #: counters the strategy predicts per inference that cannot be read off the steps
    #: (e.g. host calls made from inside kernels); checked against the worker's counts
    expected: tuple[tuple[str, int], ...] = ()
    notes: str = ""
    #: where a module's private memory begins in the memory its tensors live in, when the
    #: two are one (a lowered multi-memory plan: private addresses are rebased by this);
    #: 0 when they are apart. What an attacker who knows the layout adds to a private address
    private_base: int = 0
    #: independent requests one inference serves (`harness.plugins.requests`): request i's
    #: tensors are named `<tensor>@<i>`
    requests: int = 1

    # -- derived counts -------------------------------------------------------------------
    def bytes_copied_per_run(self) -> int:
        return sum(s.src.size for s in self.run if isinstance(s, Copy))

    def calls_per_run(self) -> int:
        return len(calls_of(self.run))

    def agents(self) -> int:
        """Threads that call into the plan's instances at once (1: one, the worker's)."""
        return 1 + max((d.agent for d in self.devices), default=0)

    def io_bytes_per_run(self) -> int:
        return sum(s.dst.size if isinstance(s, Write) else s.src.size
                   for s in self.run if isinstance(s, (Write, Read)))

    def memory_census(self) -> tuple[int, int]:
        """(wasm memories, linear bytes committed) once the plan is loaded and has run: every
        memory the host creates plus every memory each instance's module defines (read from
        its binary), at their initial sizes or the sizes their Grow steps give them. Host
        buffers (kind `buffer`) are not wasm memories."""
        grown = self.grown_pages()
        count = committed = 0
        for m in self.memories:
            if m.kind == "host":
                count += 1
                committed += max(m.min_pages, grown.get(m.id, 0)) * PAGE
        exported = {(m.instance, m.export): m.id for m in self.memories if m.kind == "export"}
        wasm = {m.name: m.wasm for m in self.modules}
        for inst in self.instances:
            info = module_info(wasm[inst.module])
            for k, mt in enumerate(info.defined_memories):
                mem_id = exported.get((inst.name, info.memory_export(k)))
                count += 1
                committed += max(mt.min_bytes, grown.get(mem_id, 0) * PAGE if mem_id else 0)
        return count, committed

    def grown_pages(self) -> dict[str, int]:
        """Memory id -> the pages its largest Grow step asks for."""
        out: dict[str, int] = {}
        for s in (*self.setup, *self.run):
            if isinstance(s, Grow):
                out[s.memory] = max(out.get(s.memory, 0), s.pages)
        return out

    def first_grows(self) -> int:
        """Grows the first inference makes (set-up's included): the Grow steps that ask a
        memory made by the host (or a host buffer) for more pages than it has by then. (A
        memory a module defines starts at the module's own size, known once it is
        instantiated: its Grow steps are all counted.)"""
        pages = {m.id: m.min_pages if m.kind == "host" else m.size // PAGE
                 for m in self.memories if m.kind in ("host", "buffer")}
        n = 0
        for s in (*self.setup, *self.run):
            if isinstance(s, Grow) and s.pages > pages.get(s.memory, -1):
                n += 1
                if s.memory in pages:
                    pages[s.memory] = s.pages
        return n

    def expected_counts(self) -> dict[str, int]:
        memories, linear = self.memory_census()
        counts = {"bytes_copied": self.bytes_copied_per_run(), "calls": self.calls_per_run(),
                  "memories": memories, "linear_bytes": linear}
        if self.grown_pages():  # grows of set-up and the first inference (not a per-run count)
            counts["grows"] = self.first_grows()
        counts.update(dict(self.expected))
        return counts

    def memory(self, mem_id: str) -> Memory:
        for m in self.memories:
            if m.id == mem_id:
                return m
        raise PlanError(f"plan has no memory {mem_id!r}")

    def filled_size(self, module: Module) -> int:
        """Bytes of `module` once its data segments hold their tensors."""
        return len(module.wasm) + sum(self.placement(t).size for t in module.segments)

    def placement(self, tensor: str) -> Region:
        for p in self.placements:
            if p.tensor == tensor:
                return p.region
        raise PlanError(f"plan places no tensor {tensor!r}")

    # -- consistency ----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise PlanError if names don't resolve or a region falls outside a known capacity."""
        devices = {d.name for d in self.devices}
        mems = {m.id: m for m in self.memories}
        modules = {m.name for m in self.modules}
        insts = {i.name: i for i in self.instances}
        hfs = {h.id for h in self.host_funcs}
        for coll, key in ((self.memories, "id"), (self.modules, "name"),
                          (self.instances, "name"), (self.devices, "name")):
            names = [getattr(x, key) for x in coll]
            if len(names) != len(set(names)):
                raise PlanError(f"duplicate names in plan: {names}")
        for m in self.memories:
            if m.kind not in MEMORY_KINDS:
                raise PlanError(f"memory {m.id}: kind must be one of {MEMORY_KINDS}")
            if m.device not in devices:
                raise PlanError(f"memory {m.id}: unknown device {m.device}")
            if m.kind == "export" and (m.instance not in insts or not m.export):
                raise PlanError(f"memory {m.id}: exported memory needs a known instance and export")
        placed = {p.tensor for p in self.placements}
        for mod in self.modules:
            unplaced = [t for t in mod.segments if t not in placed]
            if unplaced:
                raise PlanError(f"module {mod.name}: data segments of unplaced tensors {unplaced}")
        for inst in self.instances:
            if inst.module not in modules:
                raise PlanError(f"instance {inst.name}: unknown module {inst.module}")
            if inst.device not in devices:
                raise PlanError(f"instance {inst.name}: unknown device {inst.device}")
            for imp in inst.imports:
                if imp.kind == "memory":
                    if imp.target not in mems or mems[imp.target].kind == "buffer":
                        raise PlanError(f"instance {inst.name}: import {imp.module}.{imp.field} "
                                        f"binds unknown wasm memory {imp.target}")
                elif imp.kind == "func":
                    if imp.target.startswith("host:"):
                        if imp.target[5:] not in hfs:
                            raise PlanError(f"instance {inst.name}: unknown host func {imp.target}")
                    elif imp.target.split(".", 1)[0] not in insts:
                        raise PlanError(f"instance {inst.name}: unknown instance in {imp.target}")
                else:
                    raise PlanError(f"instance {inst.name}: import kind {imp.kind!r} unsupported")

        self._validate_agents(mems, insts)
        grown = self.grown_pages()

        def check(region: Region, what: str) -> None:
            if region.memory not in mems:
                raise PlanError(f"{what}: unknown memory {region.memory}")
            cap = mems[region.memory].capacity()
            if cap is not None and region.memory in grown:  # reachable once it has grown
                cap = max(cap, grown[region.memory] * PAGE)
            if region.offset < 0 or region.size < 0 or (cap is not None and region.end > cap):
                raise PlanError(f"{what}: region {region} outside memory {region.memory} "
                                f"({cap} bytes)")

        for p in self.placements:
            check(p.region, f"placement of {p.tensor}")
        for step in (*self.setup, *self.run):
            if isinstance(step, (Write,)):
                check(step.dst, f"write {step.tensor}")
            elif isinstance(step, Read):
                check(step.src, f"read {step.tensor}")
            elif isinstance(step, Copy):
                check(step.src, "copy source")
                check(step.dst, "copy destination")
                if step.src.size != step.dst.size:
                    raise PlanError(f"copy sizes differ: {step.src} -> {step.dst}")
            elif isinstance(step, Count):
                check(step.src, f"count {step.counter}")
                if step.src.size not in (4, 8):
                    raise PlanError(f"count {step.counter}: counter must be 4 or 8 bytes")
            elif isinstance(step, Grow):
                target = mems.get(step.memory)
                if target is None:
                    raise PlanError(f"grow: {step.memory} is not a memory of the plan")
                if target.max_pages is not None and step.pages > target.max_pages:
                    raise PlanError(f"grow: {step.memory} to {step.pages} pages, over its "
                                    f"maximum of {target.max_pages}")
            elif isinstance(step, (Call, Parallel)):
                for call in calls_of((step,)):
                    if call.instance not in insts:
                        raise PlanError(f"call: unknown instance {call.instance}")
                    for w in call.windows:
                        check(w.region, f"window of call {call.dispatch}")

    def _validate_agents(self, mems: Mapping[str, Memory], insts: Mapping[str, Instance]) -> None:
        """Agents reach only their own devices' instances, and a memory reaches several
        agents only when it is a shared memory (one with a maximum, as threads require)."""
        agent_of = {d.name: d.agent for d in self.devices}
        if any(a < 0 for a in agent_of.values()):
            raise PlanError("a device's agent is a non-negative number")
        users: dict[str, set[int]] = {}
        for inst in self.instances:
            for imp in inst.imports:
                if imp.kind == "memory":
                    users.setdefault(imp.target, set()).add(agent_of[inst.device])
        for mem_id, agents in users.items():
            mem = mems[mem_id]
            if len(agents) > 1 and not mem.shared:
                raise PlanError(f"memory {mem_id} is imported by agents {sorted(agents)}; "
                                "only a shared memory may be")
        for m in mems.values():
            if m.shared and m.max_pages is None:
                raise PlanError(f"memory {m.id}: a shared memory needs a maximum")
        for step in (*self.setup, *self.run):
            if isinstance(step, Call) and step.instance in insts and \
                    agent_of[insts[step.instance].device] != 0:
                raise PlanError(f"call {step.dispatch or step.export}: a call outside a "
                                "Parallel step runs on agent 0, not on its instance's agent")
            if not isinstance(step, Parallel):
                continue
            if not 1 <= len(step.branches) <= self.agents():
                raise PlanError(f"a Parallel step has {len(step.branches)} branches; the "
                                f"plan has {self.agents()} agents")
            for i, branch in enumerate(step.branches):
                for call in branch:
                    if call.instance in insts and agent_of[insts[call.instance].device] != i:
                        raise PlanError(f"branch {i} calls {call.instance}, an instance of "
                                        f"agent {agent_of[insts[call.instance].device]}")

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["modules"] = [{**asdict(m), "wasm": base64.b64encode(m.wasm).decode("ascii"),
                         "features": sorted(m.features)} for m in self.modules]
        d["requires"] = sorted(self.requires)
        return _lists(d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        try:
            return cls(
                workload=d["workload"], strategy=d["strategy"],
                devices=tuple(Device(**x) for x in d["devices"]),
                memories=tuple(Memory(**x) for x in d["memories"]),
                modules=tuple(Module(name=x["name"], wasm=base64.b64decode(x["wasm"]),
                                     features=frozenset(x.get("features", ())),
                                     defined_pages=tuple(x.get("defined_pages", ())),
                                     segments=tuple(x.get("segments", ())),
                                     precompiled=bool(x.get("precompiled", False)))
                              for x in d["modules"]),
                instances=tuple(Instance(name=x["name"], module=x["module"], device=x["device"],
                                         imports=tuple(Import(**i) for i in x["imports"]))
                                for x in d["instances"]),
                placements=tuple(Placement(tensor=x["tensor"], region=Region(**x["region"]))
                                 for x in d["placements"]),
                setup=tuple(step_from_dict(s) for s in d["setup"]),
                run=tuple(step_from_dict(s) for s in d["run"]),
                host_funcs=tuple(HostFunc(id=x["id"], kind=x["kind"], device=x["device"],
                                          args=tuple((k, v) for k, v in x.get("args", ())))
                                 for x in d.get("host_funcs", ())),
                requires=frozenset(d.get("requires", ())),
                expected=tuple((k, int(v)) for k, v in d.get("expected", ())),
                notes=d.get("notes", ""),
                private_base=int(d.get("private_base", 0)),
                requests=int(d.get("requests", 1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"malformed plan: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls.from_dict(json.loads(text))


def step_from_dict(d: Mapping[str, Any]) -> Step:
    op = d.get("op")
    if op not in _STEP_TYPES:
        raise PlanError(f"unknown step op {op!r}")
    if op == "write":
        return Write(tensor=d["tensor"], dst=Region(**d["dst"]))
    if op == "read":
        return Read(tensor=d["tensor"], src=Region(**d["src"]))
    if op == "copy":
        return Copy(src=Region(**d["src"]), dst=Region(**d["dst"]))
    if op == "count":
        return Count(counter=d["counter"], src=Region(**d["src"]))
    if op == "grow":
        return Grow(memory=d["memory"], pages=int(d["pages"]))
    if op == "parallel":
        branches = tuple(tuple(step_from_dict(c) for c in b) for b in d["branches"])
        if any(not isinstance(c, Call) for b in branches for c in b):
            raise PlanError("a Parallel step's branches hold calls only")
        return Parallel(branches=branches)  # type: ignore[arg-type]
    return Call(instance=d["instance"], export=d["export"], args=tuple(d["args"]),
                dispatch=d.get("dispatch", ""), arg_type=d.get("arg_type", "i32"),
                windows=tuple(Window(region=Region(**w["region"]), writable=w["writable"])
                              for w in d.get("windows", ())))


def _lists(x: Any) -> Any:
    """Tuples to lists recursively, so to_dict output equals what json.loads gives back."""
    if isinstance(x, dict):
        return {k: _lists(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_lists(v) for v in x]
    if isinstance(x, frozenset):
        return sorted(x)
    return x

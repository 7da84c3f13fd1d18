"""A plan as a standalone program: the generator's neutral form.

`lower_plans` turns the plans of one comparison group into a `DriverProgram`: the modules
(each distinct binary once), and per variant its memories, host functions and instances
by index, and its set-up and per-inference steps as commands over those indices (like a
command buffer: write, copy, call, read, count). A back end prints it in its language
(`harness.standalone.c_program` for wasm2c's C); the driver that interprets the commands
and times the inferences is the back end's fixed part. Nothing here knows a strategy: the
plan is all there is, as for every embedded runtime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from harness.plugins.plan import (
    Call,
    Copy,
    Count,
    Grow,
    Instance,
    Memory,
    Plan,
    Read,
    Region,
    Write,
)
from harness.plugins.wasmbin import MemoryType, ModuleInfo, module_info
from harness.runtimes.base import RuntimeUnsupported

#: the counters every program keeps, in this order (`harness.runtimes.executor.COUNTERS`
#: and the heap kinds' page counters); a plan's `Count` counters follow
FIXED_COUNTERS = ("bytes_copied", "calls", "host_calls", "bytes_written", "bytes_read",
                  "page_fills", "page_flushes")
#: counters only plans with `heap.*` host functions report (as the Python executor does)
HEAP_ONLY = ("page_fills", "page_flushes")

OP_WRITE, OP_COPY, OP_CALL, OP_READ, OP_COUNT = range(5)
#: what a program holds at most (the C driver's fixed tables: c/mb_driver.h, mb_driver.c)
MAX_COUNTERS = 32
MAX_VARIANTS = 256
MAX_TENSORS = 256
MEMORY_KINDS = {"host": 0, "export": 1, "buffer": 2}


@dataclass(frozen=True)
class ProgramMemory:
    kind: str
    device: int
    min_pages: int = 0
    max_pages: int | None = None
    size: int = 0                  # buffer bytes
    instance: int = -1             # export: the instance that defines it
    export: str = ""
    memory64: bool = False         # 64-bit addresses (a host memory's or an export's type)


@dataclass(frozen=True)
class ProgramImport:
    """One import of an instance: `kind` memory (target: a memory), host (a host
    function) or export (`export` of instance `target`)."""

    module: str
    field: str
    kind: str
    target: int
    export: str = ""


@dataclass(frozen=True)
class ProgramInstance:
    name: str
    module: int
    device: int
    imports: tuple[ProgramImport, ...]
    #: each memory the module defines: (its export name or "", its initial bytes)
    defined: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ProgramHostFunc:
    kind: str
    heap: int
    private: int = -1


@dataclass(frozen=True)
class ProgramWindow:
    memory: int
    offset: int
    size: int
    writable: bool


@dataclass(frozen=True)
class Command:
    op: int
    a: int = 0                     # write: tensor; read: output; count: counter; call: entry
    mem: int = -1                  # source (copy, read, count)
    off: int = 0
    mem2: int = -1                 # destination (write, copy)
    off2: int = 0
    size: int = 0
    args: tuple[int, ...] = ()
    windows: tuple[ProgramWindow, ...] = ()
    arg_type: str = "i32"          # call: the arguments' type (i64: memory64 addresses)


@dataclass(frozen=True)
class ProgramVariant:
    name: str
    devices: tuple[str, ...]
    memories: tuple[ProgramMemory, ...]
    instances: tuple[ProgramInstance, ...]
    host_funcs: tuple[ProgramHostFunc, ...]
    tensors: tuple[tuple[str, int], ...]     # written tensors: (name, bytes)
    outputs: tuple[tuple[str, int], ...]     # read tensors: (name, bytes)
    counters: tuple[str, ...]                # "" where a fixed counter is not reported
    calls: tuple[tuple[int, str], ...]       # call entries: (instance, export)
    setup: tuple[Command, ...]
    run: tuple[Command, ...]


@dataclass(frozen=True)
class DriverProgram:
    modules: tuple[bytes, ...]
    variants: tuple[ProgramVariant, ...]

    def digest(self) -> str:
        """Content hash of everything a back end prints (its cache key, with the back
        end's own tools and flags)."""
        h = hashlib.sha256()
        for m in self.modules:
            h.update(hashlib.sha256(m).digest())
        h.update(repr(self.variants).encode())
        return h.hexdigest()


def lower_plans(plans: Sequence[Plan], names: Sequence[str] | None = None) -> DriverProgram:
    """The plans of one program (a comparison group's variants), lowered to indices."""
    if len(plans) > MAX_VARIANTS:
        raise RuntimeUnsupported(f"a program holds at most {MAX_VARIANTS} variants")
    modules: dict[bytes, int] = {}
    variants = []
    for k, plan in enumerate(plans):
        variants.append(_lower(plan, names[k] if names else plan.strategy, modules))
    return DriverProgram(tuple(modules), tuple(variants))


def _exported_memory(plan: Plan, m: Memory) -> MemoryType:
    """The type of the memory instance `m.instance` exports as `m.export`."""
    module = next(x.module for x in plan.instances if x.name == m.instance)
    info = module_info(next(d.wasm for d in plan.modules if d.name == module))
    index = next((e.index for e in info.exports if e.kind == "memory" and e.name == m.export),
                 None)
    if index is None:
        raise RuntimeUnsupported(f"instance {m.instance} exports no memory {m.export!r}")
    every = (*info.imported_memories, *info.defined_memories)
    return every[index]


def check_bindings(plan: Plan, x: Instance, info: ModuleInfo) -> None:
    """What instantiation would check, before anything is built: every import of the module
    bound, each to the kind it declares, and each memory of a type the import accepts
    (at least its minimum; at most its maximum where it has one; shared and 64-bit alike).
    A standalone program's glue does not check (wasm2c takes any memory pointer): a wrong
    binding would show only as a wrong answer or a crash, and in the build of a whole
    group rather than in one variant."""
    declared = {(i.module, i.field): i for i in info.imports}
    unbound = sorted(f"{m}.{f}" for m, f in set(declared) - {(i.module, i.field)
                                                             for i in x.imports})
    if unbound:
        raise RuntimeUnsupported(f"instance {x.name}: imports {', '.join(unbound)} are bound "
                                 "by no plan import")
    memories = {m.id: m for m in plan.memories}
    for imp in x.imports:
        d = declared.get((imp.module, imp.field))
        what = f"instance {x.name}: import {imp.module}.{imp.field}"
        if d is None:
            raise RuntimeUnsupported(f"{what} is bound by the plan but not imported by the "
                                     "module")
        want = "memory" if imp.kind == "memory" else "func"
        if d.kind != want:
            raise RuntimeUnsupported(f"{what} is a {d.kind} import; the plan binds a {want}")
        if imp.kind != "memory" or d.memory is None:
            continue
        m = memories[imp.target]
        if m.kind == "buffer":
            raise RuntimeUnsupported(f"{what}: {m.id} is host storage, not a wasm memory")
        got = (MemoryType(m.min_pages, m.max_pages, shared=m.shared, memory64=m.memory64)
               if m.kind == "host"
               else _exported_memory(plan, m))
        need = d.memory
        if (got.min_pages < need.min_pages
                or (need.max_pages is not None
                    and (got.max_pages is None or got.max_pages > need.max_pages))
                or got.shared != need.shared or got.memory64 != need.memory64):
            raise RuntimeUnsupported(
                f"{what} needs a memory of {_limits(need)}; the plan binds {m.id}, "
                f"{_limits(got)}")


def _limits(t: MemoryType) -> str:
    return (f"{t.min_pages}..{'' if t.max_pages is None else t.max_pages} pages"
            + (", shared" if t.shared else "") + (", 64-bit" if t.memory64 else ""))


def _lower(plan: Plan, name: str, modules: dict[bytes, int]) -> ProgramVariant:
    if any(m.shared for m in plan.memories):
        raise RuntimeUnsupported("shared memories are not wired into standalone programs yet "
                                 "(wasm2c needs --enable-threads and its shared memory type; "
                                 "the linked driver, shared memory declarations)")
    if any(m.segments or m.precompiled for m in plan.modules):
        raise RuntimeUnsupported("weights in data segments are filled in by an embedding's "
                                 "worker; a standalone program is built from the plan's "
                                 "module bytes (load=copy only)")
    plan.validate()
    devices = tuple(d.name for d in plan.devices)
    dev = {d: i for i, d in enumerate(devices)}
    mem_index = {m.id: i for i, m in enumerate(plan.memories)}
    inst_index = {x.name: i for i, x in enumerate(plan.instances)}
    hf_index = {h.id: i for i, h in enumerate(plan.host_funcs)}
    wasm = {m.name: m.wasm for m in plan.modules}

    wide = tuple(m.memory64 if m.kind == "host" else
                 m.kind == "export" and _exported_memory(plan, m).memory64
                 for m in plan.memories)
    # host storage takes the plan's address width, so that a copy between it and a 64-bit
    # memory stays within one width (the linked driver cannot copy across widths)
    memories = tuple(ProgramMemory(
        m.kind, dev[m.device], m.min_pages, m.max_pages, m.size,
        inst_index[m.instance] if m.kind == "export" and m.instance else -1, m.export or "",
        any(wide) if m.kind == "buffer" else w)
        for m, w in zip(plan.memories, wide, strict=True))
    host_funcs = tuple(ProgramHostFunc(
        h.kind, mem_index[h.arg("heap")] if "heap" in dict(h.args) else -1,
        mem_index[h.arg("private")] if "private" in dict(h.args) else -1)
        for h in plan.host_funcs)
    instances = []
    for x in plan.instances:
        binary = wasm[x.module]
        module = modules.setdefault(binary, len(modules))
        imports = []
        for imp in x.imports:
            if imp.kind == "memory":
                imports.append(ProgramImport(imp.module, imp.field, "memory",
                                             mem_index[imp.target]))
            elif imp.target.startswith("host:"):
                imports.append(ProgramImport(imp.module, imp.field, "host",
                                             hf_index[imp.target[5:]]))
            else:
                src, export = imp.target.split(".", 1)
                imports.append(ProgramImport(imp.module, imp.field, "export", inst_index[src],
                                             export))
        info = module_info(binary)
        check_bindings(plan, x, info)
        defined = tuple((info.memory_export(k) or "", mt.min_bytes)
                        for k, mt in enumerate(info.defined_memories))
        instances.append(ProgramInstance(x.name, module, dev[x.device], tuple(imports),
                                         defined))

    counters = [c if c not in HEAP_ONLY or any(h.kind.startswith("heap.")
                                               for h in plan.host_funcs) else ""
                for c in FIXED_COUNTERS]
    tensors: dict[str, int] = {}
    outputs: dict[str, int] = {}
    calls: dict[tuple[int, str], int] = {}
    sizes: dict[str, int] = {}

    def region(r: Region) -> tuple[int, int]:
        return mem_index[r.memory], r.offset

    def lower_steps(steps: Sequence[object]) -> tuple[Command, ...]:
        out = []
        for s in steps:
            if isinstance(s, Write):
                t = tensors.setdefault(s.tensor, len(tensors))
                sizes[s.tensor] = s.dst.size
                m, o = region(s.dst)
                out.append(Command(OP_WRITE, t, mem2=m, off2=o, size=s.dst.size))
            elif isinstance(s, Copy):
                (m, o), (m2, o2) = region(s.src), region(s.dst)
                out.append(Command(OP_COPY, 0, m, o, m2, o2, s.src.size))
            elif isinstance(s, Call):
                entry = calls.setdefault((inst_index[s.instance], s.export), len(calls))
                if any(a >> 32 for a in s.args):
                    raise RuntimeUnsupported(f"{s.export} is called with an address of 4 GiB "
                                             "or more: standalone programs pass 32-bit "
                                             "arguments")
                out.append(Command(OP_CALL, entry, args=tuple(a & 0xFFFFFFFF for a in s.args),
                                   arg_type=s.arg_type,
                                   windows=tuple(ProgramWindow(mem_index[w.region.memory],
                                                               w.region.offset, w.region.size,
                                                               w.writable)
                                                 for w in s.windows)))
            elif isinstance(s, Read):
                o_ = outputs.setdefault(s.tensor, len(outputs))
                sizes["out:" + s.tensor] = s.src.size
                m, o = region(s.src)
                out.append(Command(OP_READ, o_, m, o, size=s.src.size))
            elif isinstance(s, Grow):
                raise RuntimeUnsupported("a standalone program does not grow memories under "
                                         "live instances (Grow steps) yet: its C and wasm "
                                         "drivers keep each memory's base from the start")
            elif isinstance(s, Count):
                if s.counter not in counters:
                    counters.append(s.counter)
                m, o = region(s.src)
                out.append(Command(OP_COUNT, counters.index(s.counter), m, o, size=s.src.size))
            else:
                raise TypeError(f"unknown step {s!r}")
        return tuple(out)

    setup, run = lower_steps(plan.setup), lower_steps(plan.run)
    if len(counters) > MAX_COUNTERS or len(tensors) > MAX_TENSORS:
        raise RuntimeUnsupported(f"a program variant holds at most {MAX_COUNTERS} counters "
                                 f"and {MAX_TENSORS} tensors; this plan has {len(counters)} "
                                 f"and {len(tensors)}")
    return ProgramVariant(
        name, devices, memories, tuple(instances), host_funcs,
        tuple((t, sizes[t]) for t in tensors), tuple((t, sizes["out:" + t]) for t in outputs),
        tuple(counters), tuple(calls), setup, run)

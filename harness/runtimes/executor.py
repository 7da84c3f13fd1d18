"""Generic plan execution over a `Backend`: the part every Python-embedded runtime shares.

Loads a plan (compile each module once per engine, create memories, instantiate in plan
order, write weights), turns the run steps into a list of closures, and counts what it
actually does (bytes copied, calls, host calls) so the harness can check the plan's claims.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from harness.codegen.module import assemble
from harness.core.protocol import HOST_ALIGN, aligned_bytes, aligned_copy
from harness.plugins.plan import (
    PAGE,
    Call,
    Copy,
    Count,
    Device,
    Grow,
    Module,
    Parallel,
    Plan,
    Read,
    Region,
    Window,
    Write,
)
from harness.plugins.wasmbin import fill_data, module_info
from harness.runtimes import hostfuncs
from harness.runtimes.agents import AgentPool
from harness.runtimes.base import Backend, RuntimeUnsupported

COUNTERS = ("bytes_copied", "calls", "host_calls", "bytes_written", "bytes_read")
#: the injected work of `Backend.burn`: a loop of `n` iterations
BURN_WAT = ('(module (func (export "burn") (param $n i32) (loop $l (br_if $l (local.tee $n '
            '(i32.sub (local.get $n) (i32.const 1)))))))')


@functools.cache
def _burn_module() -> Module:
    return Module("burn", assemble(BURN_WAT))


class LoadedPlan:
    """A plan instantiated on one backend, ready to run inferences."""

    def __init__(self, backend: Backend, plan: Plan, data: Mapping[str, np.ndarray],
                 instrument: bool = False) -> None:
        self.backend = backend
        #: time host functions (for `breakdown`); never set on the plan the samples time
        self.instrument = instrument
        self.host_ns = 0
        self.plan = plan
        # host data on the boundary every host buffer starts on (`aligned_bytes`), copied
        # only where it is not there already (`load_tensors` reads it there)
        self.data = {k: v if v.flags.c_contiguous and v.ctypes.data % HOST_ALIGN == 0
                     else aligned_copy(v) for k, v in data.items()}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.compile_s: dict[str, float] = {}
        self.instantiate_s: dict[str, float] = {}
        #: ahead-of-time builds of precompiled modules (not part of loading them)
        self.precompile_s: dict[str, float] = {}
        self._images: dict[tuple[str, str], Any] = {}
        #: iterations of the injected loop (`Backend.burn`; 0: none)
        self._burn_iterations = 0
        self._prepared = False
        self.setup_s = 0.0
        self.stores: dict[str, Any] = {}
        self.memories: dict[str, Any] = {}     # plan memory id -> runtime memory object
        self.buffers: dict[str, np.ndarray] = {}  # plan memory id -> host buffer (kind buffer)
        self.instances: dict[str, Any] = {}
        self.outputs: dict[str, np.ndarray] = {}
        #: windows of the Call step being executed (host functions check accesses against them)
        self.windows: tuple[Window, ...] = ()
        self._steps: list[Callable[[], None]] = []
        #: a plan with Grow steps addresses memories through `bases` and `sizes`, read again
        #: after every grow (an engine may move a memory that grows); other plans bake
        #: addresses into their steps
        self.growing = any(isinstance(st, Grow) for st in (*plan.setup, *plan.run))
        self.bases: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        #: grows that happened (a Grow step whose memory was smaller) and their time
        self.grow_stats = {"grows": 0, "grow_ns": 0}
        self._forgets: list[Callable[[], None]] = []
        #: the threads of a plan's agents (`Parallel` steps), made at load
        self.pool: AgentPool | None = None

    # -- loading ------------------------------------------------------------------------
    def prepare(self) -> None:
        """The build steps before loading, outside the load's time and memory figures: the
        precompiled file of each module loaded from one (an ahead-of-time build; its
        devices' stores are made here for it), and the size of injected work (`burn`)."""
        plan, be = self.plan, self.backend
        self._prepared = True
        dev_of = {d.name: d for d in plan.devices}
        for inst in plan.instances:
            key = (dev_of[inst.device].engine, inst.module)
            module = next(m for m in plan.modules if m.name == inst.module)
            if module.precompiled and key not in self._images:
                store = self._store(dev_of[inst.device])
                t0 = time.perf_counter()
                self._images[key] = be.precompile(store, self._filled(module))
                self.precompile_s[inst.module] = time.perf_counter() - t0
        if be.burn:
            self._burn_iterations = self._burn_size(be.burn)

    def _store(self, dev: Device) -> Any:
        if dev.name not in self.stores:
            self.stores[dev.name] = self.backend.new_store(dev)
        return self.stores[dev.name]

    def load(self) -> None:
        if not self._prepared:
            self.prepare()
        plan, be = self.plan, self.backend
        for dev in plan.devices:
            self._store(dev)
        dev_of = {d.name: d for d in plan.devices}
        compiled: dict[tuple[str, str], Any] = {}
        inst_dev = {i.name: i.device for i in plan.instances}
        for inst in plan.instances:
            key = (dev_of[inst.device].engine, inst.module)
            if key not in compiled:
                store = self.stores[inst.device]
                if key in self._images:
                    t0 = time.perf_counter()
                    compiled[key] = be.load_precompiled(store, self._images[key])
                else:
                    module = self._filled(next(m for m in plan.modules
                                               if m.name == inst.module))
                    t0 = time.perf_counter()
                    compiled[key] = be.compile(store, module)
                label = inst.module if dev_of[inst.device].engine == "default" else \
                    f"{inst.module}@{dev_of[inst.device].engine}"
                self.compile_s[label] = time.perf_counter() - t0
        for mem in plan.memories:
            if mem.kind == "host":
                self.memories[mem.id] = be.new_memory(self.stores[mem.device], mem)
            elif mem.kind == "buffer":
                self.buffers[mem.id] = aligned_bytes(mem.size)
        host_objs = {
            hf.id: be.host_func(self.stores[hf.device], hf, self._host_impl(hf),
                                hostfuncs.signature(hf.kind).params,
                                hostfuncs.signature(hf.kind).results)
            for hf in plan.host_funcs
        }
        for inst in plan.instances:
            store = self.stores[inst.device]
            resolved = []
            for imp in inst.imports:
                if imp.kind == "memory":
                    resolved.append((imp, self._memory_obj(imp.target)))
                elif imp.target.startswith("host:"):
                    resolved.append((imp, host_objs[imp.target[5:]]))
                else:
                    src, export = imp.target.split(".", 1)
                    if inst_dev[src] != inst.device:
                        raise ValueError(f"{inst.name} imports {imp.target} across devices")
                    resolved.append((imp, be.export(store, self.instances[src], export)))
            key = (dev_of[inst.device].engine, inst.module)
            t0 = time.perf_counter()
            self.instances[inst.name] = be.instantiate(store, compiled[key], resolved)
            self.instantiate_s[inst.name] = time.perf_counter() - t0
            for mem in plan.memories:  # exported memories become reachable now
                if mem.kind == "export" and mem.instance == inst.name:
                    self.memories[mem.id] = be.export(store, self.instances[inst.name], mem.export or "")
        if plan.agents() > 1:  # made on this thread, before any agent runs
            self.pool = AgentPool.for_plan(plan, be, self.stores, self.instances)
        t0 = time.perf_counter()
        for step in self.compile_steps(plan.setup):
            step()
        self.setup_s = time.perf_counter() - t0
        self._steps = self.compile_steps(plan.run)
        if self._burn_iterations:
            # after the plan's steps, not one of them: the plan's counts stay
            self._steps.append(self._burn_call(be, self._burn_iterations))

    def _burn_call(self, be: Backend, n: int) -> Callable[[], None]:
        """The injected loop of `n` iterations, in a module and store of its own."""
        store = be.new_store(Device("burn"))
        self.stores[f"burn{len(self.stores)}"] = store   # a call needs its store alive
        loop = _burn_module()
        return be.make_call(store, be.instantiate(store, be.compile(store, loop), []),
                            "burn", [n])

    def _burn_size(self, fraction: float) -> int:
        """Iterations of the injected loop that execute `fraction` of an inference's wasm
        operators (a known regression: `burn=N`), counted by the engine's fuel on a copy of
        the plan without it."""
        counter = self.backend.counting()
        if isinstance(counter, str):
            raise RuntimeUnsupported(f"burn= sizes its work by executed operators: {counter}")
        counter.burn = 0.0
        plain = LoadedPlan(counter, self.plan, self.data)
        plain.load()
        plain.run_once()
        before = counter.fuel_used()
        plain.run_once()
        per_inference = counter.fuel_used() - before
        marks = []
        for n in (1, 1001):
            before = counter.fuel_used()
            self._burn_call(counter, n)()
            marks.append(counter.fuel_used() - before)
        per_iteration = (marks[1] - marks[0]) / 1000
        return max(1, round(per_inference * fraction / per_iteration))

    def _filled(self, module: Module) -> Module:
        """`module` with its data segments filled with their tensors' bytes (before timing:
        a build step, like the strategy's code generation)."""
        if not module.segments:
            return module
        payloads = [self.data[t].reshape(-1).view(np.uint8).data for t in module.segments]
        return dataclasses.replace(module, wasm=fill_data(module.wasm, payloads))

    def _host_impl(self, hf: Any) -> Callable[..., Any]:
        impl = hostfuncs.python_impl(hf, self)
        if not self.instrument:
            return impl
        clock = time.perf_counter_ns

        def timed(*args: Any) -> Any:
            t0 = clock()
            try:
                return impl(*args)
            finally:
                self.host_ns += clock() - t0
        return timed

    def _memory_obj(self, mem_id: str) -> Any:
        if mem_id not in self.memories:
            raise ValueError(f"memory {mem_id} is not available yet (instantiation order?)")
        return self.memories[mem_id]

    def array(self, mem_id: str) -> np.ndarray:
        """uint8 view of a plan memory (host buffer or wasm memory)."""
        if mem_id in self.buffers:
            return self.buffers[mem_id]
        mem = self.plan.memory(mem_id)
        return self.backend.memory_array(self.stores[mem.device], self._memory_obj(mem_id))

    def on_grow(self, forget: Callable[[], None]) -> None:
        """Call `forget` after every grow (host functions drop the views they keep)."""
        self._forgets.append(forget)

    def _refresh(self) -> None:
        """Every memory's base address and length now (after loading and every grow)."""
        for mem_id in (*self.buffers, *self.memories):
            arr = self.array(mem_id)
            self.bases[mem_id], self.sizes[mem_id] = int(arr.ctypes.data), arr.size
        for forget in self._forgets:
            forget()

    def _grow(self, step: Grow) -> Callable[[], None]:
        """The step: grow the memory to `step.pages` when it has fewer, timed and counted;
        then every address is read again (`_refresh`). A host buffer grows as a host's
        allocator grows one: a new, larger buffer holding the old bytes."""
        stats, clock = self.grow_stats, time.perf_counter_ns
        if step.memory in self.buffers:
            def have() -> int:
                return self.buffers[step.memory].size // PAGE

            def add(pages: int) -> None:
                old = self.buffers[step.memory]
                new = aligned_bytes(step.pages * PAGE)
                new[:old.size] = old
                self.buffers[step.memory] = new
        else:
            be = self.backend
            store = self.stores[self.plan.memory(step.memory).device]
            mem = self._memory_obj(step.memory)
            be.memory_pages(store, mem)  # an engine whose host cannot grow says so at load

            def have() -> int:
                return int(be.memory_pages(store, mem))

            def add(pages: int) -> None:
                be.grow_memory(store, mem, pages)

        def grow() -> None:
            more = step.pages - have()
            if more > 0:
                t0 = clock()
                add(more)
                stats["grow_ns"] += clock() - t0
                stats["grows"] += 1
                self._refresh()
        return grow

    def _addr(self, region: Region) -> int:
        arr = self.array(region.memory)
        if region.end > arr.size:
            raise ValueError(f"region {region} exceeds memory {region.memory} ({arr.size} bytes)")
        return int(arr.ctypes.data) + region.offset

    # -- steps --------------------------------------------------------------------------
    def compile_steps(self, steps: tuple[Any, ...]) -> list[Callable[[], None]]:
        out: list[Callable[[], None]] = []
        c = self.counters
        memmove = ctypes.memmove
        move = None
        if self.growing:
            self._refresh()
            move = _bounded_memmove(self.bases, self.sizes, memmove)
        for step in steps:
            if isinstance(step, Grow):
                if not self.growing:
                    raise AssertionError("a Grow step in a plan without one")
                out.append(self._grow(step))
            elif move is not None and isinstance(step, (Write, Copy, Read)):
                out.append(self._moving(step, move, c))
            elif isinstance(step, Write):
                src = self.data[step.tensor]
                if src.nbytes != step.dst.size:
                    raise ValueError(f"write {step.tensor}: {src.nbytes} bytes into {step.dst.size}")
                out.append(_write(memmove, self._addr(step.dst), src, c))
            elif isinstance(step, Copy):
                out.append(_copy(memmove, self._addr(step.src), self._addr(step.dst),
                                 step.src.size, c))
            elif isinstance(step, Call):
                call = _call(self._invoke(step), c)
                out.append(self._windowed(call, step.windows) if step.windows else call)
            elif isinstance(step, Parallel):
                out.append(self._parallel(step, c))
            elif isinstance(step, Read):
                dst = aligned_bytes(step.src.size)
                self.outputs[step.tensor] = dst
                out.append(_read(memmove, self._addr(step.src), dst, c))
            elif isinstance(step, Count):
                c.setdefault(step.counter, 0)
                out.append(_count(self, step.src, step.counter, c))
            else:
                raise TypeError(f"unknown step {step!r}")
        return out

    def _invoke(self, step: Call) -> Callable[[], None]:
        store = self.stores[next(i.device for i in self.plan.instances
                                 if i.name == step.instance)]
        return self.backend.make_call(store, self.instances[step.instance], step.export,
                                      step.args)

    def _parallel(self, step: Parallel, c: dict[str, int]) -> Callable[[], None]:
        """The step: branch 0's calls here, agent i's served by agent i (`AgentPool`), all
        at once; counted when every branch has ended."""
        if self.pool is None:
            raise AssertionError("a Parallel step in a plan of one agent")
        k = self.pool.parallels.index(step)  # equal steps serve the same calls
        own = _in_order([self._invoke(call) for call in step.branches[0]])
        calls = sum(len(b) for b in step.branches)
        run = self.pool.run

        def parallel() -> None:
            run(k, own)
            c["calls"] += calls
        return parallel

    def close(self) -> None:
        """Stop the agents' threads (the plan is not run after)."""
        if self.pool is not None:
            self.pool.close()

    def _moving(self, step: Write | Copy | Read, memmove: Callable[[Where, Where, int], None],
                c: dict[str, int]) -> Callable[[], None]:
        """A Write, Copy or Read of a plan that grows memories: its addresses are
        (memory, offset) pairs, resolved at each run through `bases` (`_bounded_memmove`)."""
        if isinstance(step, Write):
            src = self.data[step.tensor]
            if src.nbytes != step.dst.size:
                raise ValueError(f"write {step.tensor}: {src.nbytes} bytes into {step.dst.size}")
            host = ("", int(src.ctypes.data))
            return _moved(memmove, (step.dst.memory, step.dst.offset), host, src.nbytes,
                          c, "bytes_written")
        if isinstance(step, Copy):
            return _moved(memmove, (step.dst.memory, step.dst.offset),
                          (step.src.memory, step.src.offset), step.src.size, c, "bytes_copied")
        dst = aligned_bytes(step.src.size)
        self.outputs[step.tensor] = dst
        return _moved(memmove, ("", int(dst.ctypes.data)), (step.src.memory, step.src.offset),
                      step.src.size, c, "bytes_read")

    def _windowed(self, call: Callable[[], None],
                  windows: tuple[Window, ...]) -> Callable[[], None]:
        def step() -> None:
            self.windows = windows
            try:
                call()
            finally:
                self.windows = ()
        return step

    def run_once(self) -> None:
        for step in self._steps:
            step()

    def breakdown(self, runs: int) -> dict[str, float]:
        """Run `runs` inferences timing every step; per-inference seconds by step kind.

        `host_call_s` is the time spent inside host functions, a part of `call_s` (only
        measured when the plan was loaded with `instrument=True`). The timers themselves
        add a little to every step: compare kinds with each other, not with the samples.
        """
        kinds = [step.op for step in self.plan.run]
        # injected work (`burn`) runs after the plan's steps: timed apart
        kinds += ["burn"] * (len(self._steps) - len(kinds))
        totals = dict.fromkeys(("write", "copy", "call", "read", *kinds), 0)
        clock = time.perf_counter_ns
        self.host_ns = 0
        t_start = clock()
        for _ in range(runs):
            for kind, step in zip(kinds, self._steps, strict=True):
                t0 = clock()
                step()
                totals[kind] += clock() - t0
        total = clock() - t_start
        out = {f"{k}_s": v / 1e9 / runs for k, v in totals.items()}
        out["host_call_s"] = self.host_ns / 1e9 / runs
        out["total_s"] = total / 1e9 / runs
        out["runs"] = float(runs)
        return out

    def reset_counters(self) -> None:
        for k in self.counters:
            self.counters[k] = 0

    def memory_census_by_device(self) -> dict[str, tuple[int, int]]:
        """Per device: (wasm memories, linear bytes committed) as loaded. Each host-created
        memory counts at its current size; each memory an instance's module defines counts
        through the runtime when the module exports it, else at the size its binary declares."""
        out = {d.name: (0, 0) for d in self.plan.devices}

        def add(device: str, nbytes: int) -> None:
            count, committed = out[device]
            out[device] = (count + 1, committed + nbytes)

        for mem in self.plan.memories:
            if mem.kind == "host" and mem.id in self.memories:
                add(mem.device, self.array(mem.id).size)
        wasm = {m.name: m.wasm for m in self.plan.modules}
        # an agent's store is in use by its thread while it serves: its instances' memories
        # count at their declared sizes (a plan of agents grows none)
        serving = {d.name for d in self.plan.devices if d.agent}
        for inst in self.plan.instances:
            info = module_info(wasm[inst.module])
            store = self.stores[inst.device]
            for k, mt in enumerate(info.defined_memories):
                name = info.memory_export(k)
                if name is None or inst.device in serving:
                    add(inst.device, mt.min_bytes)
                else:
                    obj = self.backend.export(store, self.instances[inst.name], name)
                    add(inst.device, self.backend.memory_array(store, obj).size)
        return out

    def memory_census(self) -> tuple[int, int]:
        """(wasm memories, linear bytes committed) over every device."""
        per = self.memory_census_by_device().values()
        return sum(c for c, _ in per), sum(b for _, b in per)

    def linear_bytes(self) -> int:
        """Bytes of wasm linear memory committed (sum over every distinct wasm memory)."""
        return self.memory_census()[1]


#: an address in a plan that grows memories: (memory id, offset), or ("", host address)
Where = tuple[str, int]


def _bounded_memmove(bases: dict[str, int], sizes: dict[str, int],
                     memmove: Any) -> Callable[[Where, Where, int], None]:
    """memmove between (memory, offset) places, each resolved through `bases` when it
    runs and checked against the memory's length then (a plan that reads past a grow
    it has not made yet must fail, not write past the memory)."""
    def move(dst: Where, src: Where, n: int) -> None:
        addr = []
        for mem, off in (dst, src):
            if not mem:
                addr.append(off)
                continue
            if off + n > sizes[mem]:
                raise ValueError(f"[{off}, {off + n}) is outside memory {mem} "
                                 f"({sizes[mem]} bytes now)")
            addr.append(bases[mem] + off)
        memmove(addr[0], addr[1], n)
    return move


def _moved(move: Callable[[Where, Where, int], None], dst: Where, src: Where, n: int,
           c: dict[str, int], counter: str) -> Callable[[], None]:
    def step() -> None:
        move(dst, src, n)
        c[counter] += n
    return step


def _write(memmove: Any, dst: int, src: np.ndarray, c: dict[str, int]) -> Callable[[], None]:
    addr, n = int(src.ctypes.data), src.nbytes

    def step() -> None:
        memmove(dst, addr, n)
        c["bytes_written"] += n
    return step


def _copy(memmove: Any, src: int, dst: int, n: int, c: dict[str, int]) -> Callable[[], None]:
    def step() -> None:
        memmove(dst, src, n)
        c["bytes_copied"] += n
    return step


def _in_order(fns: list[Callable[[], None]]) -> Callable[[], None]:
    """One callable running `fns` one after the other (a Parallel branch)."""
    if len(fns) == 1:
        return fns[0]

    def branch() -> None:
        for fn in fns:
            fn()
    return branch


def _call(fn: Callable[[], None], c: dict[str, int]) -> Callable[[], None]:
    def step() -> None:
        fn()
        c["calls"] += 1
    return step


def _count(lp: LoadedPlan, src: Region, counter: str, c: dict[str, int]) -> Callable[[], None]:
    def step() -> None:
        raw = lp.array(src.memory)[src.offset:src.end]
        c[counter] += int.from_bytes(raw.tobytes(), "little")
        raw[:] = 0
    return step


def _read(memmove: Any, src: int, dst: np.ndarray, c: dict[str, int]) -> Callable[[], None]:
    addr, n = int(dst.ctypes.data), dst.nbytes

    def step() -> None:
        memmove(addr, src, n)
        c["bytes_read"] += n
    return step

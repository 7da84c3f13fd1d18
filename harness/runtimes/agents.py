"""The threads that run a plan's `Parallel` branches, one per agent, each on a CPU of its own,
and the hand-off between them: wasm atomics in a shared memory of the pool's own.

Threads, not processes: agents share the plan's wasm memory, which a wasmtime
`SharedMemory` is between the threads of one process. wasmtime-py enters wasm through
ctypes, which releases the GIL for the length of a foreign call, so the agents' kernels run
at once (`docs/methodology.md`, "Concurrent dispatch", has the measurement).

Agent 0 is the worker's own thread: it starts a step, runs branch 0's calls, and waits for
the others; it is pinned to the first of the worker's CPUs for the length of each step (its
affinity is restored after, so the next pool reads the worker's CPUs again). Agent i > 0 is
pool thread i, pinned to the i-th CPU for good, and runs *no Python* while it serves: its
thread makes one call into a serving module instantiated in its own store, which waits for
each step and calls that step's kernels itself (the kernels' exports are its imports, their
arguments constants in its code). Python between an agent's calls would need the GIL at the
moment the worker's thread holds it; the waiting thread then sleeps on the GIL's futex, and
waking it cost 30 µs a step here (now 10 µs, 7 of them pinning the worker's thread).

The hand-off is the threads proposal's own: a generation word and an arrival counter in a
one-page shared memory, `i32.atomic` loads that spin for a while and then
`memory.atomic.wait32` (a futex), and `memory.atomic.notify`. Spinning keeps a waiting
agent's CPU awake, where a futex alone costs a wake-up from idle each step (tens of µs, and
on a virtual machine's idle vCPU up to milliseconds). These calls are the harness's only
synchronisation; a kernel's call takes no lock.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.codegen.module import assemble
from harness.plugins.plan import Device, Import, Memory, Module, Parallel, Plan
from harness.runtimes.base import Backend, RuntimeUnsupported

#: atomic loads a waiting agent spins before it sleeps in `memory.atomic.wait32`: a few
#: hundred µs here, longer than the host's work between two steps of one inference. Longer
#: spins (2^21, milliseconds) cost the plans measured next in the same group worker a CPU:
#: suite `threads`, GEMM 256^3, shared:threads=2, 1.09x over one agent with 2^21, 1.70x
#: with 2^17 (the batch of two 0.88x and 1.80x)
SPIN = 1 << 17
#: byte offsets in the pool's memory: the generation, the arrivals, the step, the stop
#: flag, each agent's last seen generation (a cache line each: a spinning reader shares no
#: line with a writer)
GENERATION, ARRIVED, STEP, STOP, SEEN, LINE = 0, 64, 128, 192, 256, 64


def _wait_until(word: int, test: str, spin: int) -> str:
    """WAT: wait until `test` (an i32 expression of local $v, the word's value) holds:
    `spin` atomic loads, then `memory.atomic.wait32` on the value seen, again."""
    return f"""(local.set $spin (i32.const {spin}))
    (block $out
      (loop $again
        (local.set $v (i32.atomic.load (i32.const {word})))
        (br_if $out {test})
        (if (local.get $spin)
          (then (local.set $spin (i32.sub (local.get $spin) (i32.const 1))) (br $again)))
        (drop (memory.atomic.wait32 (i32.const {word}) (local.get $v) (i64.const -1)))
        (br $again)))"""


def _sync_wat(spin: int) -> str:
    """The worker thread's side: start a step, wait for the agents' arrivals; and an
    agent's arrival, for an agent whose serving call ended in a trap."""
    return f"""(module
  (import "env" "sync" (memory 1 1 shared))
  (func (export "go") (param $step i32)
    (i32.atomic.store (i32.const {STEP}) (local.get $step))
    (i32.atomic.store (i32.const {ARRIVED}) (i32.const 0))
    (drop (i32.atomic.rmw.add (i32.const {GENERATION}) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const {GENERATION}) (i32.const -1))))
  (func (export "stop") (i32.atomic.store (i32.const {STOP}) (i32.const 1)))
  (func (export "arrive")
    (drop (i32.atomic.rmw.add (i32.const {ARRIVED}) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const {ARRIVED}) (i32.const 1))))
  (func (export "await_arrivals") (param $n i32)
    (local $v i32) (local $spin i32)
    {_wait_until(ARRIVED, "(i32.ge_u (local.get $v) (local.get $n))", spin)}))
"""


@dataclass(frozen=True)
class AgentCall:
    """One call an agent makes in a step: an export of one of its instances."""

    func: Any                  # the export, as the backend gives it (`Backend.export`)
    args: tuple[int, ...]
    arg_type: str = "i32"      # i32, or i64 for a memory64 module's addresses


def _serving_wat(agent: int, steps: Sequence[Sequence[tuple[int, AgentCall]]],
                 signatures: Sequence[tuple[int, str]], spin: int) -> str:
    """Agent `agent`'s serving module: `serve` waits for each step's generation, calls that
    step's kernels (`$step`: a `br_table` on the step number, each case its calls, by import
    number, with constant arguments) and arrives, until the stop flag; it returns only then
    (or by a trap, after which the host arrives for it and calls it again). Import `f<n>`
    has signature `signatures[n]`: (parameters, their type)."""
    imports = []
    for n, (arity, ty) in enumerate(signatures):
        params = f"(param {' '.join([ty] * arity)})" if arity else ""
        imports.append(f'(import "k" "f{n}" (func $f{n} {params}))')
    nest = "(br_table " + " ".join(f"$s{k}" for k in range(len(steps))) + \
        " $done (local.get $k))"
    for k, calls in enumerate(steps):
        body = " ".join(f"(call $f{n} " + " ".join(f"({c.arg_type}.const {int(a)})"
                                                    for a in c.args) + ")" for n, c in calls)
        nest = f"(block $s{k} {nest}) {body} (br $done)"
    seen = SEEN + agent * LINE
    arrive = (f"(drop (i32.atomic.rmw.add (i32.const {ARRIVED}) (i32.const 1)))"
              f"(drop (memory.atomic.notify (i32.const {ARRIVED}) (i32.const 1)))")
    return f"""(module
  (import "env" "sync" (memory 1 1 shared))
  {" ".join(imports)}
  (func $step (param $k i32) (block $done {nest}))
  (func (export "serve")
    (local $v i32) (local $spin i32)
    (loop $serve
      {_wait_until(GENERATION, f"(i32.ne (local.get $v) (i32.load (i32.const {seen})))", spin)}
      (i32.store (i32.const {seen}) (local.get $v))
      (if (i32.eqz (i32.atomic.load (i32.const {STOP})))
        (then
          (call $step (i32.atomic.load (i32.const {STEP})))
          {arrive}
          (br $serve))))
    {arrive}))
"""


def allowed_cpus() -> list[int]:
    """The CPUs this thread may run on, in order (every CPU where affinity is not kept)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class AgentPool:
    """`agents` agents on CPUs of their own. Agent i > 0 serves `steps[k][i]`, the calls of
    its branch of Parallel step k, from `stores[i]`, the store its instances live in; `run`
    starts a step and runs branch 0 (a callable) on the calling thread. Without `stores`,
    each agent gets a store of its own and `steps` may name nothing but empty branches."""

    def __init__(self, agents: int, backend: Backend, stores: Sequence[Any] = (),
                 steps: Sequence[Sequence[Sequence[AgentCall]]] = (), spin: int = SPIN) -> None:
        cpus = allowed_cpus()
        if agents > len(cpus):
            raise RuntimeUnsupported(
                f"{agents} agents need {agents} CPUs of their own; this worker may run on "
                f"{len(cpus)} ({', '.join(map(str, cpus))}): agents never share a CPU")
        pins = hasattr(os, "sched_setaffinity")
        #: the CPU each agent runs on (None: this platform keeps no affinity)
        self.cpus: list[int | None] = [cpus[i] if pins else None for i in range(agents)]
        self._home = set(cpus)
        be = self._be = backend
        self._stores = list(stores) or [be.new_store(Device(f"agent{i}", engine="agent-sync"))
                                        for i in range(agents)]
        # the pool's memory, in the engine of the agents' stores (a shared memory belongs
        # to one engine)
        self._memory = be.new_memory(self._stores[0], Memory(
            "sync", "sync", "host", min_pages=1, max_pages=1, shared=True))
        # the worker thread's side and each agent's arrival: one module, compiled once
        sync_module = be.compile(self._stores[0], Module("agent-sync", assemble(_sync_wat(spin))))
        sync = self._instance(0, sync_module, [])
        self._go = {k: be.make_call(self._stores[0], sync, "go", [k])
                    for k in range(-1, len(steps))}
        self._await = be.make_call(self._stores[0], sync, "await_arrivals", [agents - 1])
        self._stop_flag = be.make_call(self._stores[0], sync, "stop", [])
        # an agent's arrival when its serving call ended in a trap (agent 0 never serves)
        self._arrive = [be.make_call(self._stores[i], self._instance(i, sync_module, []),
                                     "arrive", []) if i else _nothing for i in range(agents)]
        self._serve = [self._serving(i, [step[i] if i < len(step) else () for step in steps],
                                     spin) if i else None for i in range(agents)]
        self._errors: list[BaseException | None] = [None] * agents
        #: the Parallel steps `run` numbers, in order (`for_plan`)
        self.parallels: list[Parallel] = []
        #: each agent thread's native id (agent 0: the caller's), once it has started
        self.native_ids: list[int | None] = [threading.get_native_id()] + [None] * (agents - 1)
        self._closed = False
        started = threading.Barrier(agents)
        self._threads = [threading.Thread(target=self._agent, args=(i, started), daemon=True,
                                          name=f"membench-agent-{i}")
                         for i in range(1, agents)]
        for t in self._threads:
            t.start()
        started.wait()

    @classmethod
    def for_plan(cls, plan: Plan, backend: Backend, stores: Mapping[str, Any],
                 instances: Mapping[str, Any]) -> AgentPool:
        """The pool of `plan`'s agents, from its loaded `stores` (device -> store) and
        `instances` (name -> instance): agent i serves its branch of every Parallel step,
        in plan order, from the store of its one device, its kernels' exports given to it
        here, on the caller's thread, before it starts (a store is used by one thread at a
        time)."""
        n = plan.agents()
        devices = [[d.name for d in plan.devices if d.agent == i] for i in range(n)]
        if any(len(ds) != 1 for ds in devices):
            raise RuntimeUnsupported("each agent of a plan calls into one device's store here")
        device_of = {i.name: i.device for i in plan.instances}
        parallels = [s for s in (*plan.setup, *plan.run) if isinstance(s, Parallel)]
        steps = []
        for st in parallels:
            if any(call.windows for branch in st.branches for call in branch):
                raise RuntimeUnsupported("a Parallel branch's calls have no host-checked "
                                         "windows")
            steps.append([[AgentCall(backend.export(stores[device_of[call.instance]],
                                                    instances[call.instance], call.export),
                                     tuple(call.args), call.arg_type) for call in branch]
                          if i else [] for i, branch in enumerate(st.branches)])
        pool = cls(n, backend, [stores[ds[0]] for ds in devices], steps)
        pool.parallels = parallels
        return pool

    def _instance(self, agent: int, compiled: Any, funcs: Sequence[Any]) -> Any:
        be, store = self._be, self._stores[agent]
        imports = [(Import("env", "sync", "memory", "sync"), self._memory)]
        imports += [(Import("k", f"f{n}", "func", ""), f) for n, f in enumerate(funcs)]
        return be.instantiate(store, compiled, imports)

    def _serving(self, agent: int, branches: Sequence[Sequence[AgentCall]],
                 spin: int) -> Callable[[], None]:
        """Agent `agent`'s `serve` call, its kernels imported by number."""
        funcs: list[Any] = []
        signatures: list[tuple[int, str]] = []
        ids: dict[int, int] = {}
        numbered = []
        for calls in branches:
            step = []
            for c in calls:
                if id(c.func) not in ids:
                    ids[id(c.func)] = len(funcs)
                    funcs.append(c.func)
                    signatures.append((len(c.args), c.arg_type))
                step.append((ids[id(c.func)], c))
            numbered.append(step)
        wat = _serving_wat(agent, numbered, signatures, spin)
        inst = self._instance(agent, self._be.compile(self._stores[agent], Module(
            f"agent{agent}", assemble(wat))), funcs)
        return self._be.make_call(self._stores[agent], inst, "serve", [])

    def _agent(self, i: int, started: threading.Barrier) -> None:
        cpu = self.cpus[i]
        if cpu is not None:
            os.sched_setaffinity(threading.get_native_id(), {cpu})
        self.native_ids[i] = threading.get_native_id()
        started.wait()
        serve = self._serve[i]
        assert serve is not None
        while True:
            try:
                serve()  # returns at the stop flag
                return
            except BaseException as exc:  # a trap in a kernel: handed to run()'s caller
                self._errors[i] = exc
                self._arrive[i]()

    def run(self, step: int, branch0: Callable[[], None]) -> None:
        """Run Parallel step `step` (-1: empty branches): agents 1.. serve their branches,
        `branch0` runs here; return when all have ended. The first branch's exception, if
        any, is raised (after every agent has stopped)."""
        if self._closed:
            raise RuntimeError("the agent pool is closed")
        for i in range(1, len(self.cpus)):
            self._errors[i] = None
        cpu = self.cpus[0]
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        try:
            self._go[step]()
            try:
                branch0()
            finally:
                self._await()
        finally:
            if cpu is not None:
                os.sched_setaffinity(0, self._home)
        for exc in self._errors[1:]:
            if exc is not None:
                raise exc

    def handoff_s(self, batches: int = 7, steps: int = 200) -> float:
        """The hand-off's own cost: seconds a step of empty branches takes (median over
        `batches` of `steps`), what every Parallel step pays on top of its kernels."""
        times = []
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(steps):
                self.run(-1, _nothing)
            times.append((time.perf_counter() - t0) / steps)
        return statistics.median(times)

    def close(self) -> None:
        """Stop every agent thread (a pool is not used after)."""
        if self._closed:
            return
        self._closed = True
        self._stop_flag()
        self._go[-1]()
        self._await()
        for t in self._threads:
            t.join()


def _nothing() -> None:
    """An empty branch (`AgentPool.handoff_s`)."""

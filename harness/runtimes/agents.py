"""The threads that run a plan's `Parallel` branches, one per agent, each on a CPU of its own,
and the hand-off between them: wasm atomics in a shared memory of the pool's own.

Threads, not processes: agents share the plan's wasm memory, which a wasmtime
`SharedMemory` is between the threads of one process. wasmtime-py enters wasm through
ctypes, which releases the GIL for the length of a foreign call, so the agents' kernels run
at once; Python runs only between calls (`docs/methodology.md`, "Concurrent dispatch", has
the measurement).

Agent 0 is the worker's own thread, pinned to the first of the worker's CPUs for the length
of each step (its affinity is restored after, so the next pool reads the worker's CPUs
again); agent i > 0 is pool thread i, pinned to the i-th CPU for good. A plan with more
agents than the worker has CPUs is refused: two agents on one CPU is not scaling.

The hand-off is the threads proposal's own: a generation word and an arrival counter in a
one-page shared memory, `i32.atomic` loads that spin for a while (about a millisecond) and
then `memory.atomic.wait32` (a futex), and `memory.atomic.notify`. Spinning inside wasm
holds no GIL; it keeps a waiting agent's CPU awake, where a futex alone costs a wake-up
from idle each step (tens of µs, and on a virtual machine's idle vCPU up to milliseconds:
measured in `docs/methodology.md`). These calls are the harness's only synchronisation;
a kernel's call takes no lock.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from harness.codegen.module import assemble
from harness.plugins.plan import Device, Import, Memory, Module
from harness.runtimes.base import Backend, RuntimeUnsupported

#: atomic loads a waiting agent spins before it sleeps in `memory.atomic.wait32`: a few
#: hundred µs here, longer than the host's work between two steps of one inference. Longer
#: spins (2^21, milliseconds) cost the plan measured next in the same worker a CPU: with
#: five variants interleaved in 10 ms batches, a 2-agent GEMM 256^3 went from 0.62 to
#: 0.71 ms and its batch of two from 1.18 to 1.63 ms
SPIN = 1 << 17
#: byte offsets in the pool's memory: the generation, the arrivals, each agent's last seen
#: generation (a cache line each, so spinning readers share no line with a writer)
GENERATION, ARRIVED, SEEN, LINE = 0, 64, 128, 64
def _sync_wat(spin: int) -> str:
    """The hand-off module; a waiter spins `spin` atomic loads before it sleeps."""
    return f"""(module
  (import "env" "sync" (memory 1 1 shared))
  (func (export "go")
    (i32.atomic.store (i32.const {ARRIVED}) (i32.const 0))
    (drop (i32.atomic.rmw.add (i32.const {GENERATION}) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const {GENERATION}) (i32.const -1))))
  (func (export "await_go") (param $agent i32)
    (local $at i32) (local $seen i32) (local $spin i32)
    (local.set $at (i32.add (i32.const {SEEN}) (i32.mul (local.get $agent) (i32.const {LINE}))))
    (local.set $seen (i32.load (local.get $at)))
    (local.set $spin (i32.const {spin}))
    (block $out
      (loop $again
        (br_if $out (i32.ne (i32.atomic.load (i32.const {GENERATION})) (local.get $seen)))
        (if (local.get $spin)
          (then (local.set $spin (i32.sub (local.get $spin) (i32.const 1))) (br $again)))
        (drop (memory.atomic.wait32 (i32.const {GENERATION}) (local.get $seen)
                                    (i64.const -1)))
        (br $again)))
    (i32.store (local.get $at) (i32.atomic.load (i32.const {GENERATION}))))
  (func (export "arrive")
    (drop (i32.atomic.rmw.add (i32.const {ARRIVED}) (i32.const 1)))
    (drop (memory.atomic.notify (i32.const {ARRIVED}) (i32.const 1))))
  (func (export "await_arrivals") (param $n i32)
    (local $have i32) (local $spin i32)
    (local.set $spin (i32.const {spin}))
    (block $out
      (loop $again
        (local.set $have (i32.atomic.load (i32.const {ARRIVED})))
        (br_if $out (i32.ge_u (local.get $have) (local.get $n)))
        (if (local.get $spin)
          (then (local.set $spin (i32.sub (local.get $spin) (i32.const 1))) (br $again)))
        (drop (memory.atomic.wait32 (i32.const {ARRIVED}) (local.get $have) (i64.const -1)))
        (br $again)))))
"""


def allowed_cpus() -> list[int]:
    """The CPUs this thread may run on, in order (every CPU where affinity is not kept)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


class AgentPool:
    """`agents` agents on CPUs of their own: `run` runs branch i on agent i, all at once."""

    def __init__(self, agents: int, backend: Backend, spin: int = SPIN) -> None:
        self.spin = spin
        cpus = allowed_cpus()
        if agents > len(cpus):
            raise RuntimeUnsupported(
                f"{agents} agents need {agents} CPUs of their own; this worker may run on "
                f"{len(cpus)} ({', '.join(map(str, cpus))}): agents never share a CPU")
        self._pins = hasattr(os, "sched_setaffinity")
        #: the CPU each agent runs on (None: this platform keeps no affinity)
        self.cpus: list[int | None] = [cpus[i] if self._pins else None for i in range(agents)]
        self._home = set(cpus)
        self._stores: list[Any] = []  # a call needs its store alive
        self._calls = [self._sync_calls(backend, i) for i in range(agents)]
        self._stop = False
        self._work: list[Callable[[], None] | None] = [None] * agents
        self._errors: list[BaseException | None] = [None] * agents
        self._threads = [threading.Thread(target=self._agent, args=(i,), daemon=True,
                                          name=f"membench-agent-{i}")
                         for i in range(1, agents)]
        for t in self._threads:
            t.start()

    def _sync_calls(self, be: Backend, agent: int) -> dict[str, Callable[[], None]]:
        """Agent `agent`'s instance of the hand-off module, in a store of its own (a store
        is used by one thread at a time), over the pool's shared memory."""
        store = be.new_store(Device(f"agent-sync{agent}", engine="agent-sync"))
        self._stores.append(store)
        if agent == 0:
            self._memory = be.new_memory(store, Memory("sync", "sync", "host", min_pages=1,
                                                       max_pages=1, shared=True))
        compiled = be.compile(store, Module("agent-sync", assemble(_sync_wat(self.spin))))
        inst = be.instantiate(store, compiled, [(Import("env", "sync", "memory", "sync"),
                                                 self._memory)])
        return {"go": be.make_call(store, inst, "go", []),
                "await_go": be.make_call(store, inst, "await_go", [agent]),
                "arrive": be.make_call(store, inst, "arrive", []),
                "await_arrivals": be.make_call(store, inst, "await_arrivals",
                                               [len(self.cpus) - 1])}

    def _agent(self, i: int) -> None:
        cpu = self.cpus[i]
        if cpu is not None:
            os.sched_setaffinity(threading.get_native_id(), {cpu})
        calls = self._calls[i]
        await_go, arrive = calls["await_go"], calls["arrive"]
        while True:
            await_go()
            if self._stop:
                arrive()
                return
            work = self._work[i]
            try:
                if work is not None:
                    work()
            except BaseException as exc:  # handed to the caller of run()
                self._errors[i] = exc
            arrive()

    def run(self, branches: Sequence[Callable[[], None]]) -> None:
        """Run branch i on agent i, every branch at once; return when all have ended. The
        first branch's exception, if any, is raised (after every agent has stopped)."""
        if self._stop:
            raise RuntimeError("the agent pool is closed")
        agents = len(self.cpus)
        for i in range(1, agents):
            self._work[i] = branches[i] if i < len(branches) else None
            self._errors[i] = None
        calls = self._calls[0]
        cpu = self.cpus[0]
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        try:
            calls["go"]()
            try:
                branches[0]()
            finally:
                calls["await_arrivals"]()
        finally:
            if cpu is not None:
                os.sched_setaffinity(0, self._home)
        for exc in self._errors[1:agents]:
            if exc is not None:
                raise exc

    def handoff_s(self, batches: int = 7, steps: int = 200) -> float:
        """The hand-off's own cost: seconds a step of empty branches takes (median over
        `batches` of `steps`), what every Parallel step pays on top of its kernels."""
        empty = [_nothing] * len(self.cpus)
        times = []
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(steps):
                self.run(empty)
            times.append((time.perf_counter() - t0) / steps)
        return statistics.median(times)

    def close(self) -> None:
        """Stop every agent thread (a pool is not used after)."""
        if self._stop:
            return
        self._stop = True
        self._calls[0]["go"]()
        self._calls[0]["await_arrivals"]()
        for t in self._threads:
            t.join()


def _nothing() -> None:
    """An empty branch (`AgentPool.handoff_s`)."""

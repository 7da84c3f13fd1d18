"""`threads=N`: one inference's kernels called by N agents at once, over one shared heap.

`shared` and `multi-memory` take it. The heap is the threads proposal's shared memory,
made by the host at its maximum size (a shared memory must declare one) and imported by
every agent's instances. Each agent (a thread of the worker, or a JavaScript worker) has
wasm stores of its own with its own instance of every module it calls: a store is used by
one thread at a time, and module loading and instantiation happen on the worker's thread
before any agent calls. The calls themselves take no lock. The plan's `Parallel` steps are
the only place agents synchronise: a step starts every agent's branch and ends when all
have (`harness.plugins.plan.Parallel`).

* `split=rows`: each dispatch's output rows are divided among the agents
  (`Kernel.splittable_rows`, `Kernel.row_slice`: a GEMM's rows); the next dispatch reads every row, so each dispatch is
  one Parallel step. A kernel that cannot be split runs on agent 0 alone, between them
  (Amdahl's serial part, visible in the scaling figures).
* `split=batch`: N independent requests, one per agent, each with inputs, intermediates and
  outputs of its own in the heap (`harness.plugins.requests`), sharing the weights: one
  Parallel step runs every request's whole chain of dispatches.

Scratch (a packed GEMM's panels) is per agent. Under `shared` it is a region of the heap
for each agent's instance; nothing but the layout keeps one agent's kernel out of another's
scratch. Under `multi-memory` it is the private memory each agent's instance defines,
which no other instance can address (the race probe, `harness.probes.race`, shows both).
`threads=1` is the same plan with one agent, the baseline of the scaling figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.codegen import DirectLowering, build_kernel_module
from harness.codegen.kernel import SCRATCH, ExternalKernel, Kernel, KernelModule
from harness.core.errors import SpecError, Unsupported
from harness.plugins.allocator import align_up, allocate_with_reuse, lifetimes, pages_for
from harness.plugins.growth import refuse_growing
from harness.plugins.params import Param
from harness.plugins.plan import Call, Device, Import, Instance, Memory, Parallel, Plan, Read, Write
from harness.plugins.requests import request_name
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Dispatch, Workload

THREADS_PARAM = Param("threads", "int", 0, "0: the worker's one thread calls every dispatch; "
                      "N: N agents (threads, or JavaScript workers) call the kernels at once "
                      "over one shared heap, each from wasm stores of its own (the threads "
                      "proposal's shared memory)", minimum=0, maximum=64)
SPLIT_PARAM = Param("split", "choice", "rows", "with threads=N: rows: each dispatch's output "
                    "rows divided among the agents; batch: N independent requests, one per "
                    "agent, sharing the weights", choices=("rows", "batch"))
#: the capability a plan of agents needs: a shared memory, and agents that call into it
THREADS = "threads"
HEAP = "heap"


def check_threads(strategy: Strategy) -> None:
    """`split=` only with `threads=`; `threads=` only with the strategy's other parameters
    at their defaults (the forms the concurrent planner builds)."""
    p = strategy.params
    if not p["threads"]:
        if p["split"] != SPLIT_PARAM.default:
            raise SpecError(f"{strategy.NAME}: split= is for threads=N")
        return
    odd = [f"{q.name}={p[q.name]}" for q in type(strategy).declared_params()
           if q.name not in ("threads", "split") and p[q.name] != q.default]
    if odd:
        raise SpecError(f"{strategy.NAME}: threads=N plans keep {', '.join(odd)} at their "
                        "defaults (generated modules over one shared heap, weights written "
                        "by the host)")


@dataclass
class _Job:
    """One agent's call of one kernel (whole, or some of its rows)."""

    agent: int
    dispatch: Dispatch
    kernel: Kernel
    addresses: dict[str, int]
    instance: str = ""


@dataclass
class ConcurrentPlanner:
    """Plans `workload` for `agents` agents; `private`: scratch in a memory each instance
    defines (multi-memory) rather than a heap region per instance (shared)."""

    strategy: str
    agents: int
    split: str
    private: bool

    def plan(self, workload: Workload) -> Plan:
        self._admit(workload)
        pb = PlanBuilder(workload=workload.spec, strategy=self.strategy)
        pb.devices += [Device(self._device(i), agent=i) for i in range(self.agents)]
        requests = self.agents if self.split == "batch" else 1
        pb.requests = requests
        offsets, top = self._layout(workload, requests)
        steps = self._jobs(workload, offsets)
        top = self._scratch(steps, top)
        pages = pages_for(top)
        pb.memories.append(Memory(id=HEAP, device="dev0", kind="host", min_pages=pages,
                                  max_pages=pages, shared=True, role="heap"))
        for t in workload.tensors:
            for i in range(1 if t.role == "weight" else requests):
                name = request_name(t.name, i)
                pb.place(name, HEAP, offsets[name], t.nbytes)
        kms: dict[str, KernelModule] = {}
        for step in steps:
            for job in step:
                if job.instance not in kms:
                    kms[job.instance] = self._instance(pb, job, pages)
        for t in workload.by_role("weight"):
            pb.setup.append(Write(t.name, pb.placements_region(t.name)))
        pb.run += [Write(request_name(t.name, i), pb.placements_region(request_name(t.name, i)))
                   for i in range(requests) for t in workload.by_role("input")]
        for step in steps:
            calls = [(j.agent, pb.call(j.instance, kms[j.instance], j.addresses, j.dispatch))
                     for j in step]
            if len(calls) == 1 and calls[0][0] == 0:  # agent 0 alone: a plain call
                pb.run.append(calls[0][1])
                continue
            branches: list[list[Call]] = [[] for _ in range(1 + max(a for a, _ in calls))]
            for agent, call in calls:
                branches[agent].append(call)
            pb.run.append(Parallel(tuple(tuple(b) for b in branches)))
        pb.run += [Read(request_name(t.name, i), pb.placements_region(request_name(t.name, i)))
                   for i in range(requests) for t in workload.by_role("output")]
        pb.requires.add(THREADS)
        pb.notes = (f"{self.agents} agents, split={self.split}; scratch "
                    f"{'in each instance’s private memory' if self.private else 'in the heap'}")
        return pb.build()

    def _admit(self, workload: Workload) -> None:
        refuse_growing(workload, self.strategy, "threads=N makes the shared heap at its "
                       "maximum size, which a shared memory must declare")
        for d in workload.dispatches:
            if isinstance(d.kernel, ExternalKernel) or d.kernel.reserved_bytes:
                raise Unsupported(f"{self.strategy}: {d.kernel.name} keeps its stack at the "
                                  "bottom of its one memory, where every agent's call would "
                                  "share it (the generator's kernels keep none)")

    @staticmethod
    def _device(agent: int) -> str:
        return f"dev{agent}"

    def _layout(self, workload: Workload, requests: int) -> tuple[dict[str, int], int]:
        """Offsets in the heap: the weights once, then each request's other tensors in a
        block of its own (requests run at once: no space is reused between them)."""
        spans = lifetimes(workload)
        weights = [(t.name, t.nbytes, *spans[t.name]) for t in workload.by_role("weight")]
        others = [(t.name, t.nbytes, *spans[t.name]) for t in workload.tensors
                  if t.role != "weight"]
        offsets, top = allocate_with_reuse(weights) if weights else ({}, 0)
        own, size = allocate_with_reuse(others)
        for i in range(requests):
            base = align_up(top)
            offsets |= {request_name(name, i): base + off for name, off in own.items()}
            top = base + size
        return offsets, top

    def _jobs(self, workload: Workload, offsets: dict[str, int]) -> list[list[_Job]]:
        """The calls of each step: per dispatch its row slices (rows), or every request's
        chain of dispatches in one step (batch)."""
        weights = {t.name for t in workload.by_role("weight")}

        def addrs(d: Dispatch, request: int, moved: dict[str, int]) -> dict[str, int]:
            return {b: offsets[t if t in weights else request_name(t, request)] + moved.get(b, 0)
                    for b, t in d.bindings}

        if self.split == "batch":
            return [[_Job(i, d, d.kernel, addrs(d, i, {}))
                     for i in range(self.agents) for d in workload.dispatches]]
        steps = []
        for d in workload.dispatches:
            rows = d.kernel.splittable_rows()
            if not rows:
                steps.append([_Job(0, d, d.kernel, addrs(d, 0, {}))])
                continue
            step = []
            for i in range(self.agents):
                lo, hi = rows * i // self.agents, rows * (i + 1) // self.agents
                if lo < hi:
                    part = d.kernel.row_slice(lo, hi)
                    step.append(_Job(i, d, part.kernel, addrs(d, 0, dict(part.offsets))))
            steps.append(step)
        return steps

    def _scratch(self, steps: list[list[_Job]], top: int) -> int:
        """Name each job's instance (one per executable and agent) and give it its
        scratch: a heap region of its own after the tensors, or its private memory."""
        regions: dict[str, int] = {}
        kernels: dict[str, str] = {}
        for step in steps:
            for job in step:
                job.instance = f"{job.dispatch.instance}#{job.agent}"
                if kernels.setdefault(job.instance, job.kernel.name) != job.kernel.name:
                    raise Unsupported(f"{self.strategy}: executable {job.dispatch.instance} "
                                      f"would run two kernels on agent {job.agent}")
                if job.kernel.scratch_bytes:
                    if self.private:
                        job.addresses[SCRATCH] = 0
                    else:
                        if job.instance not in regions:
                            regions[job.instance] = top = align_up(top)
                            top += job.kernel.scratch_bytes
                        job.addresses[SCRATCH] = regions[job.instance]
        return top

    def _instance(self, pb: PlanBuilder, job: _Job, pages: int) -> KernelModule:
        """The module of `job`'s kernel over the shared heap, instantiated on its agent."""
        heap = f'(import "env" "heap" (memory $heap {pages} {pages} shared))'
        features = frozenset({"imported-memory", "shared-memory"})
        decls, scratch = [heap], "$heap"
        if self.private:
            decls.append(f'(memory $priv (export "private") '
                         f'{pages_for(job.kernel.scratch_bytes)})')
            features |= {"multi-memory"}
            scratch = "$priv"
        lowering = DirectLowering({HEAP: "$heap", SCRATCH: scratch}, decls, features)
        spaces = {b.name: HEAP for b in job.kernel.buffers} | {SCRATCH: SCRATCH}
        km = build_kernel_module(job.kernel, lowering, spaces)
        mod = pb.add_module(km, defined_pages=(pages_for(job.kernel.scratch_bytes),)
                            if self.private else ())
        device = self._device(job.agent)
        pb.instances.append(Instance(job.instance, mod, device,
                                     (Import("env", "heap", "memory", HEAP),)))
        if self.private:
            pb.memories.append(Memory(id=f"{job.instance}.private", device=device,
                                      kind="export", instance=job.instance, export="private",
                                      role="private"))
        return km

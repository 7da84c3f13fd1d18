"""The race probe: what a racing writer corrupts while another agent's kernel runs.

A `threads=2` plan of a GEMM split by rows, with agent 1's kernel replaced by a *racer*: a
module that, while agent 0's kernel runs, stores a pattern over and over at agent 0's
scratch address (its packing panels), through the memory its own scratch addresses name:
a kernel with a stray scratch pointer, told the layout (the worst case). Under `shared`
that memory is the heap and the address is agent 0's scratch region; under `multi-memory`
it is the racer's own private memory, and agent 0's scratch is in another that no other
instance can address. Agent 0's rows of the output are checked against NumPy after each
of `RUNS` inferences: `corrupted` when any run differs, `contained` when none does,
`trapped` when the run trapped. The rows are result rows of kind `race`.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.codegen.module import assemble
from harness.core.protocol import save_tensors
from harness.plugins.plan import Call, Instance, Module, Parallel, Plan
from harness.plugins.registry import Registry
from harness.plugins.strategy import Strategy, Unsupported
from harness.plugins.verify import compare
from harness.plugins.workload import Workload
from harness.probes.probe import ProbeResult
from harness.runtimes.base import Runtime
from harness.store.rows import ResultRow
from harness.worker.launch import run_worker

WORKLOAD = "gemm:m=128,n=128,k=128"
RUNS = 10
#: passes of the racer over the victim's scratch: enough to outlast its kernel many times
PASSES = 2000
OUTCOMES = ("trapped", "corrupted", "contained")


def _racer_wat(heap_pages: int, private_pages: int | None) -> str:
    """Stores a NaN pattern over [at, at + n) of its scratch memory, `passes` times."""
    own = f"(memory $priv {private_pages})" if private_pages else ""
    mem = "$priv" if private_pages else "$heap"
    return f"""(module
  (import "env" "heap" (memory $heap {heap_pages} {heap_pages} shared)) {own}
  (func (export "run") (param $at i32) (param $n i32) (param $passes i32)
    (local $i i32)
    (loop $pass
      (local.set $i (i32.const 0))
      (loop $word
        (i32.store {mem} (i32.add (local.get $at) (local.get $i)) (i32.const 0x7fc0dead))
        (local.set $i (i32.add (local.get $i) (i32.const 4)))
        (br_if $word (i32.lt_u (local.get $i) (local.get $n))))
      (local.set $passes (i32.sub (local.get $passes) (i32.const 1)))
      (br_if $pass (local.get $passes)))))"""


def race_plan(plan: Plan, scratch_bytes: int) -> Plan:
    """`plan` with agent 1's first Parallel call replaced by the racer aimed at agent 0's
    scratch."""
    step = next((s for s in plan.run if isinstance(s, Parallel) and len(s.branches) > 1), None)
    if step is None or plan.requests != 1:
        raise Unsupported("the race probe needs a plan whose kernels two agents run at once "
                          "(threads=2 or more, split=rows)")
    victim = step.branches[0][0]
    private = any(m.role == "private" for m in plan.memories)
    heap = plan.memory("heap")
    wat = _racer_wat(heap.min_pages, max(1, -(-scratch_bytes // 65536)) if private else None)
    target = next(i for i in plan.instances if i.name == step.branches[1][0].instance)
    racer = Instance("racer", "racer", target.device, target.imports)
    call = Call("racer", "run", (int(victim.args[-1]), scratch_bytes, PASSES), "racer")
    run = tuple(replace(step, branches=((victim,), (call,))) if s is step else s
                for s in plan.run)
    raced = replace(plan, modules=(*plan.modules, Module("racer", assemble(wat))),
                    instances=(*plan.instances, racer), run=run)
    raced.validate()
    return raced


def run_race(strategy: Strategy, runtime: Runtime, run_id: str, workloads: Registry[Workload],
             caps: ProbeResult | None = None, timeout_s: float = 60.0) -> ResultRow:
    """The race probe of one strategy variant on one runtime, as a row of kind `race`."""
    t0 = time.perf_counter()

    def row(status: str, reason: str = "", **metrics: Any) -> ResultRow:
        return ResultRow(run_id=run_id, workload="race:scratch", strategy=strategy.spec,
                         runtime=runtime.spec, status=status, reason=reason, kind="race",
                         metrics=metrics, wall_s=time.perf_counter() - t0)

    if caps is not None and caps.status != "ok":
        return row("unavailable", caps.message)
    w = workloads.create(WORKLOAD)
    try:
        plan = race_plan(strategy.plan(w), w.dispatches[0].kernel.scratch_bytes)
    except Unsupported as exc:
        return row("unsupported", str(exc))
    if caps is not None and caps.missing(plan.requires):
        return row("unsupported", f"{runtime.NAME} lacks {', '.join(caps.missing(plan.requires))}")
    # agent 0's rows: the first of the agents' equal shares (`strategies.concurrent`)
    rows = w.dispatches[0].kernel.splittable_rows() // plan.agents()
    data = w.generate(0)
    expected = w.reference(data)["c"][:rows]
    with tempfile.TemporaryDirectory(prefix="membench-race-") as tmp:
        d = Path(tmp)
        (d / "plan.json").write_text(plan.to_json(), encoding="utf-8")
        outcome = run_worker(runtime, {"kind": "race", "runtime": runtime.spec,
                                       "plan_path": str(d / "plan.json"), "runs": RUNS,
                                       "inputs": save_tensors(d, data)}, d, timeout_s)
        if outcome.status == "trapped":
            return row("ok", outcome.message, outcome="trapped", runs=RUNS)
        if outcome.status != "ok":
            return row(outcome.status, outcome.message)
        got = [np.fromfile(r["c"], dtype="<f4").reshape(w.tensor("c").shape)[:rows]
               for r in (outcome.response or {}).get("runs", [])]
    bad = [compare({"c": g}, {"c": expected}, w.tolerance()) for g in got]
    corrupted = [v for v in bad if not v.ok]
    if corrupted:
        return row("ok", f"{len(corrupted)}/{len(got)} inferences' rows of agent 0 wrong: "
                   f"{corrupted[0].message}", outcome="corrupted", runs=len(got),
                   corrupted_runs=len(corrupted))
    return row("ok", f"agent 0's {rows} rows right in all {len(got)} inferences",
               outcome="contained", runs=len(got), corrupted_runs=0)

"""Embedding overhead: what one empty call into wasm and one empty host call from wasm cost.

Measured through the worker protocol (request kind "overhead") with two tiny plans timed
like cells: `call` calls an empty export once per inference; `host` calls an export that
calls the `noop` host function `HOST_CALLS` times. The cost of one wasm call is the
median of `call`; the cost of one host call is (median of `host` − median of `call`) /
`HOST_CALLS`. Every runtime's worker answers the same request, so the numbers are
comparable across runtimes and can be shown next to results: they say how much of a
strategy's cost is the embedding's.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.codegen.module import assemble
from harness.plugins.plan import Call, Device, HostFunc, Import, Instance, Module, Plan
from harness.runtimes.base import Runtime
from harness.worker.launch import pinned, run_worker
from harness.worker.measure import MeasureSettings

#: host calls per inference of the `host` plan (enough to dwarf the one wasm call around them)
HOST_CALLS = 1000

_WAT = """(module
  (import "env" "noop" (func $noop))
  (func (export "empty"))
  (func (export "host") (param $n i32)
    (block $done (loop $again
      (br_if $done (i32.eqz (local.get $n)))
      (call $noop)
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $again)))))"""

#: short timing: these are calibration figures, not results
SETTINGS = MeasureSettings(warmup_s=0.02, warmup_runs=2, sample_s=0.01, samples=7)


@dataclass(frozen=True)
class Overhead:
    runtime: str
    status: str                    # ok, or how the measurement failed
    message: str = ""
    call_s: float | None = None    # one empty call from the embedder into wasm
    host_call_s: float | None = None  # one empty call from wasm to an embedder function

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "call_s": self.call_s,
                "host_call_s": self.host_call_s, "host_calls_per_sample": HOST_CALLS}


def overhead_plans() -> dict[str, Plan]:
    wasm = assemble(_WAT)
    dev = Device("dev0")
    inst = Instance("m", "m", "dev0", (Import("env", "noop", "func", "host:noop"),))

    def plan(name: str, call: Call) -> Plan:
        return Plan(workload=f"overhead:{name}", strategy="overhead", devices=(dev,),
                    memories=(), modules=(Module("m", wasm),), instances=(inst,),
                    placements=(), setup=(), run=(call,),
                    host_funcs=(HostFunc("noop", "noop", "dev0"),),
                    requires=frozenset({"host-func-import"}))

    return {"call": plan("call", Call("m", "empty", ())),
            "host": plan("host", Call("m", "host", (HOST_CALLS,)))}


def measure_overhead(runtime: Runtime, timeout_s: float = 60.0,
                     settings: MeasureSettings = SETTINGS, pin: Sequence[int] = ()) -> Overhead:
    """Run the two overhead plans in `runtime`'s worker (pinned to `pin`, the run's CPUs,
    so the cost is measured where the cells run) and derive the two costs."""
    reason = runtime.unavailable_reason()
    if reason:
        return Overhead(runtime.spec, "unavailable", reason)
    with tempfile.TemporaryDirectory(prefix="membench-overhead-") as tmp:
        base = Path(tmp)
        paths = {}
        for name, plan in overhead_plans().items():
            paths[name] = str(base / f"overhead_{name}.json")
            Path(paths[name]).write_text(plan.to_json(), encoding="utf-8")
        outcome = run_worker(runtime, pinned({"kind": "overhead", "runtime": runtime.spec,
                                              "plans": paths, "settings": settings.to_dict()},
                                             pin), base, timeout_s)
    if outcome.status != "ok" or outcome.response is None:
        return Overhead(runtime.spec, outcome.status, outcome.message)
    timings = outcome.response.get("timings", {})
    try:
        call = statistics.median(timings["call"]["samples_s"])
        host = statistics.median(timings["host"]["samples_s"])
        got = timings["host"]["counters"]["host_calls"]
    except (KeyError, TypeError, statistics.StatisticsError) as exc:
        return Overhead(runtime.spec, "crashed", f"malformed overhead response: {exc!r}")
    if got != HOST_CALLS:
        return Overhead(runtime.spec, "invalid",
                        f"worker counted {got} host calls, expected {HOST_CALLS}")
    return Overhead(runtime.spec, "ok", "", call, max(host - call, 0.0) / HOST_CALLS)

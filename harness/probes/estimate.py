"""Pre-run cost estimate: is a cell hopeless before it wastes its budget?

Some cells are slow by construction (one host call per memory access through a Python
callback on a big GEMM). Before running a cell the harness prices the calls its plan
declares with the runtime's *measured* per-call costs:

    per inference ≈ host_calls × (cost of one host call) + Call steps × (dispatch cost)

`host_calls` is the plan's own prediction (`Plan.expected_counts()`); a host call is priced
at the embedding's callback cost when the plan declares host functions (they are served
by the runtime's embedding language), otherwise at a wasm-to-wasm call's cost (a wasm
host shim). The costs come from three calibration plans run through the runtime's own
worker: a loop of calls to the `noop` host function, a loop of calls to another
instance's export, and a run of empty dispatches. A cell round runs at
least 1 + warmup_runs + samples inferences (plus `warmup_s`), so that is compared with
the budget, times the number of rounds (each round runs the cell afresh). Kernel compute
is not priced: the estimate is a lower bound.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.codegen import assemble
from harness.plugins.plan import Call, Device, HostFunc, Import, Instance, Module, Plan
from harness.runtimes.base import Runtime
from harness.worker.launch import pinned, run_worker
from harness.worker.measure import MeasureSettings

LOOP = 4000       # calls per calibration inference
DISPATCHES = 50   # Call steps per dispatch-calibration inference
_CALIBRATE = MeasureSettings(warmup_s=0.0, warmup_runs=1, sample_s=0.02, samples=3)


@dataclass(frozen=True)
class CallCosts:
    """Measured seconds per call on one runtime."""

    host_call_s: float      # wasm -> embedding host function
    wasm_call_s: float      # wasm -> another instance's export
    dispatch_s: float       # worker -> wasm export (one Call step)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _loop_module(name: str) -> Module:
    wat = ('(module (import "env" "f" (func $f)) (func (export "run") (local $i i32) '
           f'(loop $l (call $f) (local.set $i (i32.add (local.get $i) (i32.const 1))) '
           f'(br_if $l (i32.lt_u (local.get $i) (i32.const {LOOP}))))))')
    return Module(name, assemble(wat), frozenset({"host-func-import"}))


def calibration_plans() -> dict[str, tuple[Plan, int]]:
    """name -> (plan, calls per inference) for the three per-call costs."""
    dev = (Device("dev0"),)
    empty = Module("empty", assemble('(module (func (export "f")))'))

    def plan(name: str, modules: tuple[Module, ...], instances: tuple[Instance, ...],
             run: tuple[Call, ...], host_funcs: tuple[HostFunc, ...] = ()) -> Plan:
        return Plan(workload=f"calibrate:{name}", strategy="calibrate", devices=dev,
                    memories=(), modules=modules, instances=instances, placements=(),
                    setup=(), run=run, host_funcs=host_funcs)

    host = plan("host_call", (_loop_module("loop"),),
                (Instance("loop", "loop", "dev0", (Import("env", "f", "func", "host:noop"),)),),
                (Call("loop", "run", ()),), (HostFunc("noop", "noop", "dev0"),))
    wasm = plan("wasm_call", (empty, _loop_module("loop")),
                (Instance("callee", "empty", "dev0"),
                 Instance("loop", "loop", "dev0", (Import("env", "f", "func", "callee.f"),))),
                (Call("loop", "run", ()),))
    dispatch = plan("dispatch", (empty,), (Instance("callee", "empty", "dev0"),),
                    tuple(Call("callee", "f", ()) for _ in range(DISPATCHES)))
    return {"host_call_s": (host, LOOP), "wasm_call_s": (wasm, LOOP),
            "dispatch_s": (dispatch, DISPATCHES)}


def measure_call_costs(runtime: Runtime, timeout_s: float = 60.0,
                       pin: Sequence[int] = ()) -> CallCosts | str:
    """Measured per-call costs (in a worker pinned to `pin`, the run's CPUs), or why they
    could not be measured."""
    costs: dict[str, float] = {}
    for key, (plan, calls) in calibration_plans().items():
        with tempfile.TemporaryDirectory(prefix="membench-cal-") as tmp:
            d = Path(tmp)
            (d / "plan.json").write_text(plan.to_json(), encoding="utf-8")
            out = run_worker(runtime, pinned({"kind": "cell", "runtime": runtime.spec,
                                              "plan_path": str(d / "plan.json"), "inputs": {},
                                              "settings": _CALIBRATE.to_dict()}, pin),
                             d, timeout_s)
        samples = (out.response or {}).get("timing", {}).get("samples_s", [])
        if out.status == "unsupported":
            # the runtime cannot run such a plan (pywasm3 links no export into another
            # instance), so no cell of it pays this cost: 0 keeps the estimate a lower
            # bound, and the runtime's other costs still price its cells (before, one
            # unsupported calibration left wasm3 with no estimate at all, and its paged
            # add:n=65536, 1.4 s per inference, cost make bench about 80 s)
            costs[key] = 0.0
            continue
        if out.status != "ok" or not samples:
            return f"calibration {key} failed: {out.status} {out.message}".strip()
        costs[key] = min(samples) / calls
    return CallCosts(**costs)


def inference_s(plan: Plan, costs: CallCosts) -> float:
    """Lower-bound seconds per inference from the calls the plan declares."""
    host_calls = plan.expected_counts().get("host_calls", 0)
    per_host_call = costs.host_call_s if plan.host_funcs else costs.wasm_call_s
    return host_calls * per_host_call + plan.calls_per_run() * costs.dispatch_s


def inferences_per_round(settings: MeasureSettings) -> int:
    """Inferences a round runs at the least: the cold one; a warm-up of at least
    `warmup_runs` and of more than `steady_window` batches (steadiness is judged on the
    last window against the batches before it); per sample, one re-warming inference (a
    comparison group interleaves its variants) and one timed. A cell alone takes all its
    `samples`; in a group a slow variant may take fewer (`measure.samples_for`), and the
    estimate still prices `samples`, so a cell that runs alone fits the budget too."""
    return 1 + max(settings.warmup_runs, settings.steady_window + 1) + 2 * settings.samples


def cell_s(plan: Plan, costs: CallCosts, settings: MeasureSettings) -> float:
    """Lower-bound seconds a cell spends running inferences under `settings`."""
    per_round = inference_s(plan, costs) * inferences_per_round(settings)
    return (per_round + settings.warmup_s) * max(1, getattr(settings, "rounds", 1))


def over_budget(plan: Plan, costs: CallCosts, settings: MeasureSettings,
                budget_s: float) -> dict[str, Any] | None:
    """The estimate, if the cell would exceed `budget_s` (else None)."""
    total = cell_s(plan, costs, settings)
    if total <= budget_s:
        return None
    return {"estimate_s": total, "inference_s": inference_s(plan, costs),
            "host_calls": plan.expected_counts().get("host_calls", 0),
            "budget_s": budget_s, "costs": costs.to_dict()}

"""Inside a worker: one plan loaded, its first inference taken, and after its samples the
checks and the response a cell row is made of. A cell request measures one variant
(`main.run_cell`); a comparison group several in one process (`group.run_group`)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.plugins.plan import Plan
from harness.runtimes.base import Backend, Runtime
from harness.runtimes.executor import LoadedPlan
from harness.worker.measure import MeasureSettings, Timing, clock_of, time_cold


def memory_now() -> dict[str, int]:
    import psutil

    info = psutil.Process().memory_info()
    return {"rss": int(info.rss), "vms": int(info.vms)}


def peak_rss() -> int:
    """Peak resident set of this process so far (the kernel's high-water mark)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:4])[:500]


def slowdown_of(rt: Runtime) -> float:
    """The runtimes' `slowdown=N` parameter as a fraction (a known, injected regression)."""
    return float(rt.params.get("slowdown", 0)) / 100.0


@dataclass
class LoadedVariant:
    """A plan loaded and run once: its set-up phases, memory, counters and first outputs."""

    plan: Plan
    lp: LoadedPlan
    before: dict[str, int]
    after_load: dict[str, int]
    after_first: dict[str, int]
    peak_after_load: int
    linear_after_setup: int
    first_s: float
    per_run: dict[str, int]
    first_out: dict[str, np.ndarray]


def load_variant(be: Backend, plan: Plan, data: dict[str, np.ndarray],
                 settings: MeasureSettings) -> LoadedVariant:
    """Compile, instantiate, set up; then the cold first inference with its counters."""
    lp = LoadedPlan(be, plan, data)
    lp.prepare()   # ahead-of-time builds, before the load's figures
    before = memory_now()
    lp.load()
    after_load, peak_after_load = memory_now(), peak_rss()
    linear_after_setup = lp.linear_bytes()
    lp.reset_counters()
    first_s = time_cold(lp.run_once, clock_of(settings))
    after_first = memory_now()
    per_run = dict(lp.counters)
    first_out = {k: v.copy() for k, v in lp.outputs.items()}
    lp.reset_counters()
    return LoadedVariant(plan, lp, before, after_load, after_first, peak_after_load,
                         linear_after_setup, first_s, per_run, first_out)


#: inferences the counting pass runs (each counted apart: they must agree)
FUEL_RUNS = 3


def count_fuel(be: Backend, plan: Plan, data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Wasm operators one inference executes, counted by the engine's fuel in a copy of the
    plan of its own (after the samples, never during them): `fuel` per inference, or
    None with `fuel_reason`. The first inference is run before counting, and each of the
    next FUEL_RUNS is counted alone: they must agree (a kernel's work does not depend on
    its inputs' values), or the count is not given."""
    if plan.agents() > 1:
        return {"fuel": None, "fuel_reason": "a plan of several agents is not counted: their "
                "spin-waits (the hand-off, harness.runtimes.agents) execute operators too, as "
                "many as the wait lasts"}
    counting = be.counting()
    if isinstance(counting, str):
        return {"fuel": None, "fuel_reason": counting}
    lp = LoadedPlan(counting, plan, data)
    lp.load()
    lp.run_once()
    counts = []
    for _ in range(FUEL_RUNS):
        before = counting.fuel_used()
        lp.run_once()
        counts.append(counting.fuel_used() - before)
    if len(set(counts)) != 1:
        return {"fuel": None, "fuel_reason": f"inferences executed different operator counts: "
                f"{counts}"}
    return {"fuel": counts[0]}


def finish_variant(v: LoadedVariant, timing: Timing, be: Backend, data: dict[str, np.ndarray],
                   settings: MeasureSettings, out_dir: Path, prefix: str = "",
                   shared_process: bool = False) -> dict[str, Any]:
    """After the samples: the same work every inference (counters), the same outputs every
    inference (no state leaks), what stays committed, an optional instrumented breakdown,
    the outputs written for verification. With `shared_process` (a group) the process's
    peak RSS belongs to every variant in it, so it is reported as the group's, apart."""
    lp = v.lp
    resp: dict[str, Any] = {"status": "ok", "message": ""}
    n = timing.inferences()
    drift = {k: c for k, c in lp.counters.items() if c != v.per_run[k] * n}
    if drift:
        raise RuntimeError(f"counters differ between inferences: per run {v.per_run}, "
                           f"after {n} runs {lp.counters}")
    # what the inferences left committed (a kernel that grows memory shows here)
    n_memories, linear = lp.memory_census()
    by_device = lp.memory_census_by_device()
    changed = [k for k, out in lp.outputs.items() if not np.array_equal(out, v.first_out[k])]
    if changed:
        resp["status"] = "crashed"
        resp["message"] = (f"outputs {changed} changed between inferences "
                           "(state leaks from one inference into the next)")
    if "fuel" in settings.measure:
        resp["counts"] = count_fuel(be, v.plan, data)
    breakdown: dict[str, float] = {}
    if settings.breakdown:
        # a separate, instrumented copy of the plan: the samples ran without its timers
        ilp = LoadedPlan(be, v.plan, data, instrument=True)
        ilp.load()
        runs = max(1, min(settings.max_inner, math.ceil(
            3 * settings.sample_s / max(statistics.median(timing.samples_s), 1e-9))))
        breakdown = ilp.breakdown(runs)
    outputs = {}
    for name, raw in v.first_out.items():
        path = out_dir / f"{prefix}out_{name}.bin"
        raw.tofile(path)
        outputs[name] = str(path)
    memory: dict[str, Any] = {
        "linear_bytes_after_setup": v.linear_after_setup, "linear_bytes": linear,
        "memories": n_memories,
        "linear_bytes_by_device": {k: d[1] for k, d in by_device.items()},
        "vms_reserved": v.after_load["vms"] - v.before["vms"],
        # resident after the first inference: pages a mapped image faulted in show here
        "rss_first_delta": v.after_first["rss"] - v.before["rss"]}
    if shared_process:  # what this variant's load added; the process figures are the group's
        memory.update(rss_load_delta=v.after_load["rss"] - v.before["rss"],
                      group_peak_rss=peak_rss())
    else:
        memory.update(rss_start=v.before["rss"], vms_start=v.before["vms"],
                      rss_after_load=v.after_load["rss"], vms_after_load=v.after_load["vms"],
                      peak_rss_after_load=v.peak_after_load, peak_rss=peak_rss())
    resp.update({
        "phases": {"compile_s": lp.compile_s, "instantiate_s": lp.instantiate_s,
                   "setup_s": lp.setup_s, "first_run_s": timing.first_s,
                   **({"precompile_s": lp.precompile_s} if lp.precompile_s else {}),
                   # memories grown under live instances (Grow steps: set-up and the
                   # first inference; later inferences find them grown)
                   **({"grows": lp.grow_stats["grows"],
                       "grow_s": lp.grow_stats["grow_ns"] / 1e9} if lp.growing else {})},
        "timing": timing.to_dict(), "counters": v.per_run, "memory": memory,
        "outputs": outputs})
    if breakdown:
        resp["breakdown"] = breakdown
    if lp.pool is not None:  # where the agents ran, and what a step's hand-off costs
        resp["agents"] = {"agents": len(lp.pool.cpus), "cpus": lp.pool.cpus,
                          "handoff_s": lp.pool.handoff_s()}
    return resp

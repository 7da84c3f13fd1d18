"""Worker process: `python -m harness.worker REQUEST.json`.

Executes one request (a cell, a probe or a calibration) for one runtime in its own
process, so a crash, trap or hang ends the cell and not the suite. Writes
`response.json` (atomically) and output tensors next to the request.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.protocol import PROTOCOL, RESPONSE, load_tensors, write_json_atomic
from harness.plugins.plan import Plan
from harness.plugins.registry import RUNTIMES, Registry
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported, TrapError
from harness.runtimes.executor import LoadedPlan
from harness.worker.lockstep import Gate
from harness.worker.measure import MeasureSettings, clock_of, time_cold, time_steady


def _memory_now() -> dict[str, int]:
    import psutil

    info = psutil.Process().memory_info()
    return {"rss": int(info.rss), "vms": int(info.vms)}


def _peak_rss() -> int:
    """Peak resident set of this process so far (the kernel's high-water mark)."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def pin(cpus: list[int] | None) -> list[int] | None:
    """Pin this process to `cpus` (`--pin`); return the affinity actually in force."""
    import os

    if not hasattr(os, "sched_setaffinity"):
        return None
    if cpus:
        os.sched_setaffinity(0, cpus)
    return sorted(os.sched_getaffinity(0))


def runtime_info(rt: Runtime, be: Backend) -> dict[str, Any]:
    return {"name": rt.NAME, "spec": rt.spec, "version": be.version(), "config": be.config(),
            "python": sys.version.split()[0]}


def run_cell(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    plan = Plan.from_json(Path(req["plan_path"]).read_text(encoding="utf-8"))
    data = load_tensors(req["inputs"])
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    before = _memory_now()
    slowdown = float(rt.params.get("slowdown", 0)) / 100.0
    lp = LoadedPlan(be, plan, data)
    resp: dict[str, Any] = {"status": "ok", "message": ""}
    breakdown: dict[str, float] = {}
    gate = Gate.from_request(req)
    if gate is not None:
        gate.wait()  # the other side of the pair sets up first
    try:
        lp.load()
        after_load = _memory_now()
        peak_after_load = _peak_rss()
        linear_after_setup = lp.linear_bytes()
        lp.reset_counters()
        run = lp.run_once
        first_s = time_cold(run, clock_of(settings))
        per_run = dict(lp.counters)
        first_out = {k: v.copy() for k, v in lp.outputs.items()}
        lp.reset_counters()
        timing = time_steady(run, settings, first_s, clock_of(settings),
                             gate.wait if gate is not None else None, slowdown)
        n = timing.inferences()
        drift = {k: v for k, v in lp.counters.items() if v != per_run[k] * n}
        if drift:
            raise RuntimeError(f"counters differ between inferences: per run {per_run}, "
                               f"after {n} runs {lp.counters}")
        # what the inferences left committed (a kernel that grows memory shows here)
        n_memories, linear = lp.memory_census()
        by_device = lp.memory_census_by_device()
        changed = [k for k, v in lp.outputs.items() if not np.array_equal(v, first_out[k])]
        if changed:
            resp["status"] = "crashed"
            resp["message"] = (f"outputs {changed} changed between inferences "
                               "(state leaks from one inference into the next)")
        if settings.breakdown:
            # a separate, instrumented copy of the plan: the main samples above ran without
            # any of its timers
            ilp = LoadedPlan(be, plan, data, instrument=True)
            ilp.load()
            runs = max(1, min(settings.max_inner, math.ceil(
                3 * settings.sample_s / max(statistics.median(timing.samples_s), 1e-9))))
            breakdown = ilp.breakdown(runs)
    except be.trap_types() as exc:
        return {"status": "trapped", "message": _one_line(exc)}
    outputs = {}
    for name, raw in first_out.items():
        path = out_dir / f"out_{name}.bin"
        raw.tofile(path)
        outputs[name] = str(path)
    resp.update({
        "phases": {"compile_s": lp.compile_s, "instantiate_s": lp.instantiate_s,
                   "setup_s": lp.setup_s, "first_run_s": timing.first_s},
        "timing": timing.to_dict(),
        "counters": per_run,
        "memory": {"rss_start": before["rss"], "vms_start": before["vms"],
                   "rss_after_load": after_load["rss"], "vms_after_load": after_load["vms"],
                   "peak_rss_after_load": peak_after_load, "peak_rss": _peak_rss(),
                   "linear_bytes_after_setup": linear_after_setup, "linear_bytes": linear,
                   "memories": n_memories,
                   "linear_bytes_by_device": {k: v[1] for k, v in by_device.items()},
                   "vms_reserved": after_load["vms"] - before["vms"]},
        "outputs": outputs,
    })
    if breakdown:
        resp["breakdown"] = breakdown
    return resp


def run_probe(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    """Run each probe plan once; a capability is present if the plan loads, runs and
    produces the expected bytes."""
    caps: dict[str, Any] = {}
    for probe in req["probes"]:
        plan = Plan.from_json(Path(probe["plan_path"]).read_text(encoding="utf-8"))
        data = load_tensors(probe.get("inputs", {}))
        try:
            lp = LoadedPlan(be, plan, data)
            lp.load()
            lp.run_once()
            got = {k: v.tobytes().hex() for k, v in lp.outputs.items()}
            ok = got == probe["expect"]
            caps[probe["capability"]] = {"ok": ok, "detail": "" if ok else
                                         f"ran but produced {got}, expected {probe['expect']}"}
        except Exception as exc:  # a missing feature shows up as any kind of error
            caps[probe["capability"]] = {"ok": False, "detail": _one_line(exc)}
    return {"status": "ok", "message": "", "capabilities": caps}


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[:4])[:500]


def run_overhead(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    """Time each plan of `req["plans"]` like a cell (cold run, warm-up, samples) and return
    its per-inference samples and counters; `harness.probes.overhead` turns them into costs."""
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    timings: dict[str, Any] = {}
    for name, path in req["plans"].items():
        lp = LoadedPlan(be, Plan.from_json(Path(path).read_text(encoding="utf-8")), {})
        lp.load()
        lp.reset_counters()
        first_s = time_cold(lp.run_once)
        per_run = dict(lp.counters)
        timing = time_steady(lp.run_once, settings, first_s)
        timings[name] = {"samples_s": timing.samples_s, "inner": timing.inner,
                         "counters": per_run}
    return {"status": "ok", "message": "", "timings": timings}


HANDLERS = {"cell": run_cell, "probe": run_probe, "overhead": run_overhead}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.worker REQUEST.json", file=sys.stderr)
        return 2
    req_path = Path(args[0])
    out_dir = req_path.parent
    t0 = time.perf_counter()
    req = json.loads(req_path.read_text(encoding="utf-8"))
    resp: dict[str, Any]
    try:
        affinity = pin(req.get("pin"))
        rt: Runtime = Registry[Runtime](RUNTIMES, "runtime").create(req["runtime"])
        be = rt.backend()
        info = runtime_info(rt, be)
        resp = HANDLERS[req["kind"]](req, rt, be, out_dir)
        resp["runtime"] = info
        resp["affinity"] = affinity
    except TrapError as exc:
        resp = {"status": "trapped", "message": _one_line(exc)}
    except RuntimeUnsupported as exc:
        resp = {"status": "unsupported", "message": str(exc)}
    except Exception as exc:
        resp = {"status": "crashed", "message": _one_line(exc),
                "traceback": traceback.format_exc(limit=8)}
    resp["protocol"] = PROTOCOL
    resp["worker_s"] = time.perf_counter() - t0
    write_json_atomic(out_dir / RESPONSE, resp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Worker process: `python -m harness.worker REQUEST.json`.

Executes one request (a cell, a probe or a calibration) for one runtime in its own
process, so a crash, trap or hang ends the cell and not the suite. Writes
`response.json` (atomically) and output tensors next to the request.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.protocol import PROTOCOL, RESPONSE, load_tensors, write_json_atomic
from harness.plugins.plan import Plan
from harness.plugins.registry import RUNTIMES, Registry
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported, TrapError
from harness.runtimes.executor import LoadedPlan
from harness.worker.group import blame_line, run_group
from harness.worker.lockstep import Gate
from harness.worker.measure import MeasureSettings, clock_of, time_cold, time_steady
from harness.worker.variant import finish_variant, load_variant, one_line, slowdown_of


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
    gate = Gate.from_request(req)
    if gate is not None:
        gate.wait()  # the other side of the pair sets up first
    try:
        v = load_variant(be, plan, data, settings)
        timing = time_steady(v.lp.run_once, settings, v.first_s, clock_of(settings),
                             gate.wait if gate is not None else None, slowdown_of(rt))
        return finish_variant(v, timing, be, data, settings, out_dir)
    except be.trap_types() as exc:
        return {"status": "trapped", "message": one_line(exc)}


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
            caps[probe["capability"]] = {"ok": False, "detail": one_line(exc)}
    return {"status": "ok", "message": "", "capabilities": caps}


def run_race(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    """The race probe (`harness.probes.race`): the plan's inferences run `runs` times, each
    one's outputs written apart, for the harness to judge."""
    plan = Plan.from_json(Path(req["plan_path"]).read_text(encoding="utf-8"))
    lp = LoadedPlan(be, plan, load_tensors(req["inputs"]))
    lp.load()
    runs = []
    for k in range(int(req["runs"])):
        lp.run_once()
        files = {}
        for name, raw in lp.outputs.items():
            path = out_dir / f"race{k}_{name}.bin"
            raw.tofile(path)
            files[name] = str(path)
        runs.append(files)
    lp.close()
    return {"status": "ok", "message": "", "runs": runs}


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


def run_insts(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    """Under callgrind (`harness.toolchain.valgrind`): for each plan, once loaded and run
    once, segments of `inferences[k]` inferences, each ended by a labelled dump
    (`<name>:<k>`); the parent reads the dumps. Each plan has its own
    inputs (`inputs[name]`: plans of several workloads share one worker). Not a timing:
    the worker runs 20-100x slower under valgrind."""
    import ctypes
    import gc

    marks = ctypes.CDLL(req["marks"])
    counted: dict[str, str] = {}
    for name, path in req["plans"].items():
        try:
            data = load_tensors(req["inputs"][name])
            lp = LoadedPlan(be, Plan.from_json(Path(path).read_text(encoding="utf-8")), data)
            lp.load()
            run = lp.run_once
            run()
            # no collection inside a segment: one would land in one segment, not the other,
            # and where depends on what the worker allocated before (earlier plans)
            gc.collect()
            gc.disable()
            # a dump of its own ends what came before (loading, the first inference)
            marks.mb_dump(f"{name}:start".encode())
            for k, n in enumerate(req["inferences"]):
                for _ in range(n):
                    run()
                marks.mb_dump(f"{name}:{k}".encode())
            gc.enable()
            counted[name] = ""
        except Exception as exc:  # this plan is not counted; the others are
            gc.enable()
            counted[name] = one_line(exc)
    return {"status": "ok", "message": "", "counted": counted}


HANDLERS = {"cell": run_cell, "group": run_group, "probe": run_probe,
            "overhead": run_overhead, "insts": run_insts, "race": run_race}


class WorkerLeaves(Exception):
    """The worker ends without a response, naming the request's variant that was running
    (`index`, None when unknown) in the blame file: the parent then measures the others
    again without it, as when a worker dies (`harness.run.group`)."""

    def __init__(self, index: int | None, why: str) -> None:
        super().__init__(why)
        self.index = index


Handle = Callable[[dict[str, Any], Runtime, Path], dict[str, Any]]


def serve(argv: list[str] | None, module: str, handle: Handle) -> int:
    """The worker protocol around `handle` (request in, response out, any failure a status):
    shared by this worker and the standalone-program worker. `handle` returns the response,
    its `runtime` entry included."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {module} REQUEST.json", file=sys.stderr)
        return 2
    req_path = Path(args[0])
    out_dir = req_path.parent
    t0 = time.perf_counter()
    req = json.loads(req_path.read_text(encoding="utf-8"))
    resp: dict[str, Any]
    try:
        affinity = pin(req.get("pin"))
        rt: Runtime = Registry[Runtime](RUNTIMES, "runtime").create(req["runtime"])
        resp = handle(req, rt, out_dir)
        resp["affinity"] = affinity
    except WorkerLeaves as exc:
        if exc.index is not None and req.get("blame_path"):
            Path(req["blame_path"]).write_bytes(blame_line(exc.index))
        print(f"membench: the worker leaves no response: {exc}", file=sys.stderr)
        return 3
    except TrapError as exc:
        resp = {"status": "trapped", "message": one_line(exc)}
    except RuntimeUnsupported as exc:
        resp = {"status": "unsupported", "message": str(exc)}
    except Exception as exc:
        resp = {"status": "crashed", "message": one_line(exc),
                "traceback": traceback.format_exc(limit=8)}
    resp["protocol"] = PROTOCOL
    resp["worker_s"] = time.perf_counter() - t0
    write_json_atomic(out_dir / RESPONSE, resp)
    return 0


def _handle(req: dict[str, Any], rt: Runtime, out_dir: Path) -> dict[str, Any]:
    be = rt.backend()
    info = runtime_info(rt, be)
    resp = HANDLERS[req["kind"]](req, rt, be, out_dir)
    resp["runtime"] = info
    return resp


def main(argv: list[str] | None = None) -> int:
    return serve(argv, "harness.worker", _handle)


if __name__ == "__main__":
    sys.exit(main())

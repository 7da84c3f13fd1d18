"""Worker of the standalone-program runtimes: `python -m harness.standalone.worker REQUEST`.

Speaks the worker protocol (`harness.core.protocol`) like `harness.worker.main`, but
executes no plan itself: it lowers the request's plans into one program
(`harness.standalone.program`), builds it (`harness.standalone.wasm2c_build`), runs it,
and turns what the program measured (program.json, the output files) into the same
response a Python or JS worker gives, so the parent verifies outputs and checks counts
exactly as for any runtime.

A back end that runs its program in this process (`WasmtimeLinked.IN_PROCESS`) serves
cells and groups through `harness.standalone.paired`, whose groups may hold the embedded
twin's variants too (`Runtime.group_spec`).

A variant that cannot be built (wasm2c refuses its module, the plan needs what the
program cannot wire) is `unsupported` alone; the others are built without it. When the
program dies, the variant it was running (its blame file says) is set aside; the others
run again without it, and the suspect then runs alone, so it fails only by itself.
"""

from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path
from typing import Any

from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.standalone.backend import ProgramBackend
from harness.standalone.paired import run_paired_group
from harness.standalone.runner import ProgramRunner, Variant, runtime_info
from harness.worker.lockstep import Gate
from harness.worker.main import serve
from harness.worker.measure import MeasureSettings
from harness.worker.variant import one_line


def _tensor_files(inputs: dict[str, Any]) -> dict[str, str]:
    return {name: e["path"] for name, e in (inputs or {}).items()}


def handle_group(req: dict[str, Any], runner: ProgramRunner) -> dict[str, Any]:
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    variants = [Variant(Plan.from_json(Path(x["plan_path"]).read_text(encoding="utf-8")))
                for x in req["variants"]]
    t0 = time.perf_counter()
    ok = runner.buildable(variants)
    t1 = time.perf_counter()
    runner.run(variants, ok, _tensor_files(req["inputs"]), settings, "measure")
    return {"status": "ok", "message": "", "variants": [v.result for v in variants],
            "group": {"variants": len(variants), "order": "rotating",
                      "samples": settings.samples, "load_s": t1 - t0,
                      "measure_s": time.perf_counter() - t1, "finish_s": 0.0}}


def handle_cell(req: dict[str, Any], runner: ProgramRunner) -> dict[str, Any]:
    """A group of one: the parent reads the outputs where the response says they are."""
    resp = handle_group({**req, "variants": [{"plan_path": req["plan_path"]}]}, runner)
    return dict(resp["variants"][0])


def handle_probe(req: dict[str, Any], runner: ProgramRunner) -> dict[str, Any]:
    caps: dict[str, Any] = {}
    settings = MeasureSettings()
    for probe in req["probes"]:
        v = Variant(Plan.from_json(Path(probe["plan_path"]).read_text(encoding="utf-8")))
        try:
            if runner.buildable([v]):
                runner.run([v], [0], _tensor_files(probe.get("inputs", {})), settings, "once")
            res = v.result or {}
            if res.get("status") != "ok":
                caps[probe["capability"]] = {"ok": False, "detail": res.get("message", "")}
                continue
            got = {k: Path(p).read_bytes().hex() for k, p in res["outputs"].items()}
            ok = got == probe["expect"]
            caps[probe["capability"]] = {"ok": ok, "detail": "" if ok else
                                         f"ran but produced {got}, expected {probe['expect']}"}
        except Exception as exc:  # a missing feature shows up as any kind of error
            caps[probe["capability"]] = {"ok": False, "detail": one_line(exc)}
    return {"status": "ok", "message": "", "capabilities": caps}


def handle_overhead(req: dict[str, Any], runner: ProgramRunner) -> dict[str, Any]:
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    timings: dict[str, Any] = {}
    for name, path in req["plans"].items():
        v = Variant(Plan.from_json(Path(path).read_text(encoding="utf-8")))
        if runner.buildable([v]):
            runner.run([v], [0], {}, settings, "measure")
        res = v.result or {}
        if res.get("status") != "ok":
            raise RuntimeError(f"overhead plan {name}: {res.get('message')}")
        timings[name] = {"samples_s": res["timing"]["samples_s"],
                         "inner": res["timing"]["inner"], "counters": res["counters"]}
    return {"status": "ok", "message": "", "timings": timings}


HANDLERS = {"cell": handle_cell, "group": handle_group, "probe": handle_probe,
            "overhead": handle_overhead}


def program_backend(rt: Runtime) -> ProgramBackend:
    """The back end a runtime names (`Runtime.program_backend`: "module:Class", built by
    the class's `for_runtime`)."""
    target = rt.program_backend()
    if target is None:
        raise RuntimeUnsupported(f"{rt.spec} runs no standalone programs")
    module, _, name = target.partition(":")
    cls = getattr(importlib.import_module(module), name)
    backend: ProgramBackend = cls.for_runtime(rt)
    return backend


def _handle(req: dict[str, Any], rt: Runtime, out_dir: Path) -> dict[str, Any]:
    if Gate.from_request(req) is not None:
        raise RuntimeUnsupported("a standalone program times itself: it cannot take its "
                                 "samples in lockstep with another worker (ab --lockstep)")
    backend = program_backend(rt)
    runner = ProgramRunner(rt, backend, out_dir)
    if getattr(backend, "IN_PROCESS", False) and req["kind"] in ("group", "cell"):
        group = req if req["kind"] == "group" else {
            **req, "variants": [{"plan_path": req["plan_path"]}]}
        resp = run_paired_group(group, rt, backend, out_dir)  # type: ignore[arg-type]
        if req["kind"] == "cell":
            resp = dict(resp["variants"][0])
    else:
        resp = HANDLERS[req["kind"]](req, runner)
    resp["runtime"] = runtime_info(rt, runner)
    return resp


def main(argv: list[str] | None = None) -> int:
    return serve(argv, "harness.standalone.worker", _handle)


if __name__ == "__main__":
    sys.exit(main())

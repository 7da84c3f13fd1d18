"""Worker of the standalone-program runtimes: `python -m harness.standalone.worker REQUEST`.

Speaks the worker protocol (`harness.core.protocol`) like `harness.worker.main`, but
executes no plan itself: it lowers the request's plans into one program
(`harness.standalone.program`), builds it (`harness.standalone.wasm2c_build`), runs it,
and turns what the program measured (program.json, the output files) into the same
response a Python or JS worker gives, so the parent verifies outputs and checks counts
exactly as for any runtime.

A variant that cannot be built (wasm2c refuses its module, the plan needs what the
program cannot wire) is `unsupported` alone; the others are built without it. When the
program dies, the variant it was running (its blame file says) is set aside; the others
run again without it, and the suspect then runs alone, so it fails only by itself.
"""

from __future__ import annotations

import importlib
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.standalone.backend import Death, ProgramBackend
from harness.worker.lockstep import Gate
from harness.worker.main import WorkerLeaves, serve
from harness.worker.measure import MeasureSettings
from harness.worker.variant import one_line


class ProgramDied(WorkerLeaves):
    """A program of several variants died: `index` (of the request's variants) was running,
    when known. No response: the parent measures the others again without it."""


@dataclass
class Variant:
    """One plan of the request, and what became of it."""

    plan: Plan
    result: dict[str, Any] | None = None     # set once final (a failure, or measured)
    compile_s: dict[str, float] | None = None


class ProgramRunner:
    """Builds and runs programs for one request in `out_dir`, through one back end."""

    def __init__(self, rt: Runtime, backend: ProgramBackend, out_dir: Path) -> None:
        self.rt, self.backend, self.out_dir = rt, backend, out_dir

    def buildable(self, variants: Sequence[Variant]) -> list[int]:
        """The variants the back end can run; the others become `unsupported`."""
        ok = []
        for i, v in enumerate(variants):
            try:
                v.compile_s = self.backend.prepare(v.plan)
                ok.append(i)
            except RuntimeUnsupported as exc:
                v.result = {"status": "unsupported", "message": str(exc)}
        return ok

    def run(self, variants: Sequence[Variant], which: Sequence[int], tensors: dict[str, str],
            settings: MeasureSettings, mode: str, timeout_s: float | None = None) -> None:
        """Run the program of `which`. A variant that dies alone gets the death as its
        result; a program of several that dies raises `ProgramDied`, naming the request's
        variant it was running when it can: the parent then measures the others again
        without it, each program in a worker of its own, so no rows of two programs ever
        pair (`harness.run.group`)."""
        if not which:
            return
        died = self._once(variants, which, tensors, settings, mode, timeout_s)
        if died is None:
            return
        if len(which) == 1:
            variants[which[0]].result = {"status": died.status, "message": died.why}
            return
        raise ProgramDied(None if died.blamed is None else which[died.blamed], died.why)

    def _once(self, variants: Sequence[Variant], which: Sequence[int],
              tensors: dict[str, str], settings: MeasureSettings, mode: str,
              timeout_s: float | None) -> Death | None:
        slowdown = float(self.rt.params.get("slowdown", 0)) / 100.0
        with tempfile.TemporaryDirectory(dir=self.out_dir, prefix="program-") as tmp:
            t = Path(tmp)
            got = self.backend.execute([variants[i].plan for i in which], tensors, settings,
                                       mode, slowdown, t, timeout_s)
            if isinstance(got, Death):
                return got
            for k, i in enumerate(which):  # outputs named by the request's index
                variants[i].result = self._response(variants[i], got["variants"][k], t,
                                                    got["peak_rss"], len(which) > 1, i,
                                                    settings.clock)
        return None

    def _response(self, v: Variant, r: dict[str, Any], t: Path, peak_rss: int,
                  shared_process: bool, k: int, clock: str) -> dict[str, Any]:
        """A variant's part of program.json, as `harness.worker.variant.finish_variant`
        answers."""
        if r["status"] != "ok":
            return {"status": r["status"], "message": r["message"]}
        n = r["warmup_runs"] + r["rewarm_runs"] + r["inner"] * len(r["samples_s"])
        per_run, after = r["counters"], r["counters_after"]
        drift = {c: x for c, x in after.items() if x != per_run[c] * n}
        if drift:
            return {"status": "crashed", "message": f"counters differ between inferences: "
                    f"per run {per_run}, after {n} runs {after}"}
        outputs = {}
        for name, o in r["outputs"].items():
            dst = self.out_dir / f"v{k}_{o['file'][o['file'].index('out_'):]}"
            (t / o["file"]).replace(dst)
            outputs[name] = str(dst)
        resp: dict[str, Any] = {"status": "ok", "message": ""}
        changed = [name for name, o in r["outputs"].items() if o["changed"]]
        if changed:
            resp = {"status": "crashed", "message": f"outputs {changed} changed between "
                    "inferences (state leaks from one inference into the next)"}
        memory: dict[str, Any] = {}
        if "census" in r:  # a back end that cannot see every memory leaves the check out
            census = {dev: tuple(x) for dev, x in r["census"].items()}
            memory.update({
                "linear_bytes_after_setup": sum(b for _, b in r["census_load"].values()),
                "linear_bytes": sum(b for _, b in census.values()),
                "memories": sum(m for m, _ in census.values()),
                "linear_bytes_by_device": {dev: b for dev, (_, b) in census.items()}})
        if shared_process:
            memory["group_peak_rss"] = peak_rss
            if "rss_before" in r:
                memory["rss_load_delta"] = r["rss_after_load"] - r["rss_before"]
        else:
            memory["peak_rss"] = peak_rss
            if "rss_before" in r:
                memory.update(rss_start=r["rss_before"], rss_after_load=r["rss_after_load"])
        memory.update(r.get("memory", {}))
        dev_engine = {d.name: d.engine for d in v.plan.devices}
        compile_s = {}
        for inst in v.plan.instances:
            engine = dev_engine[inst.device]
            label = inst.module if engine == "default" else f"{inst.module}@{engine}"
            compile_s[label] = (v.compile_s or {}).get(inst.module, 0.0)
        timing = {"clock": clock, "inner": r["inner"], "warmup_runs": r["warmup_runs"],
                  "warmup_s": r["warmup_s"], "steady": r["steady"],
                  "samples_s": r["samples_s"]}
        if r["rewarm_runs"]:
            timing["rewarm_runs"] = r["rewarm_runs"]
        if r["passes"]:
            timing["passes"] = r["passes"]
        resp.update({
            "phases": {"compile_s": compile_s, "instantiate_s": r.get("instantiate_s", {}),
                       "setup_s": r["setup_s"], "first_run_s": r["first_s"],
                       **({"load_s": r["load_s"]} if "load_s" in r else {}),
                       **r.get("phases", {})},
            "timing": timing, "counters": per_run, "memory": memory, "outputs": outputs})
        return resp


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


def runtime_info(rt: Runtime, runner: ProgramRunner) -> dict[str, Any]:
    return {"name": rt.NAME, "spec": rt.spec, **runner.backend.info(),
            "python": sys.version.split()[0]}


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
    runner = ProgramRunner(rt, program_backend(rt), out_dir)
    resp = HANDLERS[req["kind"]](req, runner)
    resp["runtime"] = runtime_info(rt, runner)
    return resp


def main(argv: list[str] | None = None) -> int:
    return serve(argv, "harness.standalone.worker", _handle)


if __name__ == "__main__":
    sys.exit(main())

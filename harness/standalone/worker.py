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

import json
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.protocol import PROTOCOL, RESPONSE, write_json_atomic
from harness.plugins.plan import Plan
from harness.plugins.registry import RUNTIMES, Registry
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.runtimes.wasm2c_runtime import find_toolchain
from harness.standalone.program import lower_plans
from harness.standalone.wasm2c_build import Build, Builder
from harness.worker.group import read_blame
from harness.worker.main import pin
from harness.worker.measure import MIN_PASSES, SAMPLE_COST, MeasureSettings
from harness.worker.variant import one_line


@dataclass
class Variant:
    """One plan of the request, and what became of it."""

    plan: Plan
    result: dict[str, Any] | None = None     # set once final (a failure, or measured)
    compile_s: dict[str, float] | None = None


class ProgramRunner:
    """Builds and runs programs for one request in `out_dir`."""

    def __init__(self, rt: Runtime, builder: Builder, out_dir: Path) -> None:
        self.rt, self.builder, self.out_dir = rt, builder, out_dir
        self.builds: list[Build] = []

    def buildable(self, variants: Sequence[Variant]) -> list[int]:
        """The variants whose modules build; the others become `unsupported`."""
        ok = []
        for i, v in enumerate(variants):
            try:
                lower_plans([v.plan])
                times = {}
                for m in v.plan.modules:
                    _, _, seconds = self.builder.module(m.wasm)
                    times[m.name] = seconds
                v.compile_s = times
                ok.append(i)
            except RuntimeUnsupported as exc:
                v.result = {"status": "unsupported", "message": str(exc)}
        return ok

    def run(self, variants: Sequence[Variant], which: Sequence[int], tensors: dict[str, str],
            settings: MeasureSettings, mode: str, timeout_s: float | None = None) -> None:
        """Run the program of `which` until each has a result (a death blamed on one
        variant sets it aside: the rest run again, then it runs alone)."""
        pending = list(which)
        suspects: list[int] = []
        while pending:
            died = self._once(variants, pending, tensors, settings, mode, timeout_s)
            if died is None:
                break
            blamed, why = died
            if len(pending) == 1:
                variants[pending[0]].result = {"status": "crashed", "message": why}
                break
            if blamed is None:  # the program named no one: each variant alone
                for i in pending:
                    self.run(variants, [i], tensors, settings, mode, timeout_s)
                break
            suspects.append(blamed)
            pending.remove(blamed)
        for i in suspects:
            self.run(variants, [i], tensors, settings, mode, timeout_s)

    def _once(self, variants: Sequence[Variant], which: Sequence[int],
              tensors: dict[str, str], settings: MeasureSettings, mode: str,
              timeout_s: float | None) -> tuple[int | None, str] | None:
        program = lower_plans([variants[i].plan for i in which])
        build = self.builder.build(program)
        self.builds.append(build)
        with tempfile.TemporaryDirectory(dir=self.out_dir, prefix="program-") as tmp:
            t = Path(tmp)
            blame = t / "blame"
            slowdown = float(self.rt.params.get("slowdown", 0)) / 100.0
            lines = [f"out {t}", f"blame {blame}", f"clock {settings.clock}", f"mode {mode}",
                     *(f"setting {k} {getattr(settings, k)}" for k in (
                         "warmup_s", "warmup_runs", "warmup_max_s", "steady_window",
                         "steady_tol", "batch_s", "sample_s", "samples", "max_inner")),
                     f"setting slowdown {slowdown}", f"setting sample_cost {SAMPLE_COST}",
                     f"setting min_passes {MIN_PASSES}",
                     *(f"tensor {name} {path}" for name, path in tensors.items())]
            (t / "config").write_text("\n".join(lines) + "\n")
            try:
                out = subprocess.run([str(build.exe), str(t / "config")], capture_output=True,
                                     text=True, timeout=timeout_s)
                code, said = out.returncode, (out.stderr or out.stdout).strip()
            except subprocess.TimeoutExpired:
                code, said = -signal.SIGKILL, f"timed out after {timeout_s:.0f} s"
            result = t / "program.json"
            if code != 0 or not result.exists():
                index = read_blame(blame)
                how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                       else f"exit status {code}")
                why = f"the program died ({how}){': ' + said[-300:] if said else ''}"
                if index is None or index >= len(which):
                    return None, why
                return which[index], why + f", running variant {variants[which[index]].plan.strategy}"
            got = json.loads(result.read_text())
            for k, i in enumerate(which):
                variants[i].result = self._response(variants[i], got["variants"][k], t,
                                                    got["peak_rss"], len(which) > 1, k,
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
        census = {dev: tuple(x) for dev, x in r["census"].items()}
        memory: dict[str, Any] = {
            "linear_bytes_after_setup": sum(b for _, b in r["census_load"].values()),
            "linear_bytes": sum(b for _, b in census.values()),
            "memories": sum(m for m, _ in census.values()),
            "linear_bytes_by_device": {dev: b for dev, (_, b) in census.items()}}
        if shared_process:
            memory.update(rss_load_delta=r["rss_after_load"] - r["rss_before"],
                          group_peak_rss=peak_rss)
        else:
            memory.update(rss_start=r["rss_before"], rss_after_load=r["rss_after_load"],
                          peak_rss=peak_rss)
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
            "phases": {"compile_s": compile_s, "instantiate_s": r["instantiate_s"],
                       "setup_s": r["setup_s"], "first_run_s": r["first_s"],
                       "load_s": r["load_s"]},
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
    resp = handle_group({**req, "variants": [{"plan_path": req["plan_path"]}]}, runner)
    out = resp["variants"][0]
    for name, path in out.get("outputs", {}).items():  # a cell's outputs carry no prefix
        dst = Path(path).with_name(Path(path).name.removeprefix("v0_"))
        Path(path).replace(dst)
        out["outputs"][name] = str(dst)
    return dict(out)


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
    tc = runner.builder.tc
    builds = runner.builds
    return {"name": rt.NAME, "spec": rt.spec, "version": f"wabt {tc.wabt_version}",
            "config": {"compiler": tc.cc_version, "cflags": list(runner.builder.cflags),
                       "host": "native C (harness/standalone/c/mb_host.c)",
                       "bounds_checks": "guard pages (wasm2c's default on 64-bit Linux)",
                       "programs_built": sum(not b.cached for b in builds),
                       "programs_cached": sum(b.cached for b in builds),
                       "link_s": sum(b.link_s for b in builds)},
            "python": sys.version.split()[0]}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m harness.standalone.worker REQUEST.json", file=sys.stderr)
        return 2
    req_path = Path(args[0])
    out_dir = req_path.parent
    t0 = time.perf_counter()
    req = json.loads(req_path.read_text(encoding="utf-8"))
    resp: dict[str, Any]
    try:
        affinity = pin(req.get("pin"))
        rt: Runtime = Registry[Runtime](RUNTIMES, "runtime").create(req["runtime"])
        tc = find_toolchain()
        if isinstance(tc, str):
            raise RuntimeUnsupported(tc)
        runner = ProgramRunner(rt, Builder(tc, rt.spec_flags()), out_dir)
        resp = HANDLERS[req["kind"]](req, runner)
        resp["runtime"] = runtime_info(rt, runner)
        resp["affinity"] = affinity
    except RuntimeUnsupported as exc:
        resp = {"status": "unsupported", "message": str(exc)}
    except Exception as exc:
        resp = {"status": "crashed", "message": one_line(exc),
                "traceback": traceback.format_exc(limit=8)}
    resp["protocol"] = PROTOCOL
    resp["worker_s"] = time.perf_counter() - t0
    write_json_atomic(out_dir / RESPONSE, resp)
    return 0


if __name__ == "__main__":
    sys.exit(main())

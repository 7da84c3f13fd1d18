"""The standalone worker's programs, run through one back end: which variants the back end
can build, running the program of several (a death blamed on the one that was running),
and each variant's part of what the program measured turned into the response a Python
or JS worker gives (`harness.worker.variant.finish_variant`'s shape)."""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.standalone.backend import Death, ProgramBackend
from harness.worker.group import failure
from harness.worker.main import WorkerLeaves
from harness.worker.measure import MeasureSettings


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
        which = self._built(variants, which, tensors, settings, mode)
        if not which:
            return
        died = self._once(variants, which, tensors, settings, mode, timeout_s)
        if died is None:
            return
        if len(which) == 1:
            variants[which[0]].result = {"status": died.status, "message": died.why}
            return
        raise ProgramDied(None if died.blamed is None else which[died.blamed], died.why)

    def _built(self, variants: Sequence[Variant], which: Sequence[int],
               tensors: dict[str, str], settings: MeasureSettings, mode: str) -> list[int]:
        """Build the program of `which`; the variants it can be built of. When the program
        of several fails to build (a C compile or link error of the group's glue, a
        wasm-merge error), each is built alone: those that fail alone get their failure,
        and the program is built of the others; if each builds alone but not together,
        all get the failure."""
        slowdown = float(self.rt.params.get("slowdown", 0)) / 100.0

        def build(idx: Sequence[int]) -> Exception | None:
            try:
                self.backend.build([variants[i].plan for i in idx], tensors, settings, mode,
                                   slowdown)
                return None
            except Exception as exc:  # any failure to build is the variant's result
                return exc

        failed = build(which)
        if failed is None:
            return list(which)
        if len(which) == 1:
            variants[which[0]].result = failure(failed, ())
            return []
        fine = []
        for i in which:
            alone = build([i])
            if alone is None:
                fine.append(i)
            else:
                variants[i].result = failure(alone, ())
        if fine and len(fine) < len(which) and build(fine) is None:
            return fine
        for i in fine:
            variants[i].result = failure(failed, ())
        return []

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
                variants[i].result = self.response(variants[i], got["variants"][k], t,
                                                    got["peak_rss"], len(which) > 1, i,
                                                    settings.clock)
        return None

    def response(self, v: Variant, r: dict[str, Any], t: Path, peak_rss: int,
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
        if "subgroup" in r:  # one of several programs: its samples pair only among its own
            resp["subgroup"] = r["subgroup"]
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


def runtime_info(rt: Runtime, runner: ProgramRunner) -> dict[str, Any]:
    return {"name": rt.NAME, "spec": rt.spec, **runner.backend.info(),
            "python": sys.version.split()[0]}

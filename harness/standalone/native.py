"""The C back end run natively: wasm2c's translation built by the system C compiler
(`harness.standalone.wasm2c_build`) and executed as a process (`c/mb_driver.c`)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.runtimes.wasm2c_runtime import find_toolchain
from harness.standalone.backend import Death
from harness.standalone.c_program import glue_source
from harness.standalone.program import lower_plans
from harness.standalone.wasm2c_build import Build, Builder
from harness.worker.group import read_blame
from harness.worker.measure import MIN_PASSES, SAMPLE_COST, MeasureSettings


class NativeProgram:
    """A comparison group as one native program."""

    def __init__(self, cflags: Sequence[str] = (), builder: Builder | None = None) -> None:
        if builder is None:
            tc = find_toolchain()
            if isinstance(tc, str):
                raise RuntimeUnsupported(tc)
            builder = Builder(tc, cflags)
        self.builder = builder
        self.builds: list[Build] = []
        self._built: dict[tuple[int, ...], Build] = {}

    @classmethod
    def for_runtime(cls, rt: Runtime) -> NativeProgram:
        return cls(rt.spec_flags())

    def prepare(self, plan: Plan) -> dict[str, float]:
        program = lower_plans([plan])
        built = self.builder.modules(program.modules)  # each distinct binary once
        # the variant's own glue, printed now: a binding the C glue cannot express (an
        # export missing, two signatures for one import) makes this variant unsupported
        # alone, not its whole group when the group's program is printed
        glue_source(program, [h for h, _, _ in built])
        seconds = {wasm: s for wasm, (_, _, s) in zip(program.modules, built, strict=True)}
        return {m.name: seconds[m.wasm] for m in plan.modules}

    def build(self, plans: Sequence[Plan], tensors: dict[str, str], settings: MeasureSettings,
              mode: str, slowdown: float) -> None:
        """Translate, compile and link the program of `plans` (cached by content)."""
        self._built[tuple(map(id, plans))] = self.builder.build(lower_plans(plans))

    def execute(self, plans: Sequence[Plan], tensors: dict[str, str],
                settings: MeasureSettings, mode: str, slowdown: float, out: Path,
                timeout_s: float | None) -> dict[str, Any] | Death:
        build = self._built.pop(tuple(map(id, plans)), None) or self.builder.build(
            lower_plans(plans))
        self.builds.append(build)
        blame = out / "blame"
        lines = [f"out {out}", f"blame {blame}", f"clock {settings.clock}", f"mode {mode}",
                 *(f"setting {k} {getattr(settings, k)}" for k in (
                     "warmup_s", "warmup_runs", "warmup_max_s", "steady_window",
                     "steady_tol", "batch_s", "sample_s", "samples", "max_inner")),
                 f"setting slowdown {slowdown}", f"setting sample_cost {SAMPLE_COST}",
                 f"setting min_passes {MIN_PASSES}",
                 *(f"tensor {name} {path}" for name, path in tensors.items())]
        (out / "config").write_text("\n".join(lines) + "\n")
        try:
            done = subprocess.run([str(build.exe), str(out / "config")], capture_output=True,
                                  text=True, timeout=timeout_s)
            code, said = done.returncode, (done.stderr or done.stdout).strip()
        except subprocess.TimeoutExpired:
            code, said = -signal.SIGKILL, f"timed out after {timeout_s:.0f} s"
        result = out / "program.json"
        if code != 0 or not result.exists():
            index = read_blame(blame)
            how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
                   else f"exit status {code}")
            why = f"the program died ({how}){': ' + said[-300:] if said else ''}"
            if index is None or index >= len(plans):
                return Death(None, why)
            return Death(index, why + f", running variant {plans[index].strategy}")
        got: dict[str, Any] = json.loads(result.read_text())
        return got

    def info(self) -> dict[str, Any]:
        tc, builds = self.builder.tc, self.builds
        return {"version": f"wabt {tc.wabt_version}",
                "config": {"compiler": tc.cc_version, "cflags": list(self.builder.cflags),
                           "host": "native C (harness/standalone/c/mb_host.c)",
                           "bounds_checks": "guard pages (wasm2c's default on 64-bit Linux)",
                           "programs_built": sum(not b.cached for b in builds),
                           "programs_cached": sum(b.cached for b in builds),
                           "link_s": sum(b.link_s for b in builds)}}

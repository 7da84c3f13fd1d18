"""The wasm back end run by an engine: a plan group as one linked WASI command
(`harness.standalone.wasm_program`, merged by `harness.standalone.link`), started at
`_start`; it measures itself and writes its report to stdout.

No embedding sits between the dispatches: the program's driver is wasm. There is no
embedding host either, so `host-call` runs here only with its wasm host (`host=wasm`).
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.cache import CACHE_ROOT
from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime, RuntimeUnsupported
from harness.standalone.backend import Death
from harness.standalone.link import WASMTIME_MAX_MEMORIES, memories_added, program_parts
from harness.standalone.program import DriverProgram, lower_plans
from harness.standalone.wasm_program import (
    Layout,
    linked_program,
    parse_report,
    write_outputs,
)
from harness.worker.measure import MeasureSettings

#: a probe (`mode once`) needs the first inference only: the rest is kept minimal
ONCE = MeasureSettings(warmup_s=0.0, warmup_runs=1, warmup_max_s=0.0, samples=1,
                       sample_s=1e-9, max_inner=1)


@dataclass(frozen=True)
class Part:
    """One linked program of a request: the request's variants it holds, in order."""

    indices: list[int]
    program: DriverProgram
    wasm: bytes
    lay: Layout
    link_s: float


class LinkedProgram:
    """Builds the linked program; a subclass runs it on its engine (`_run`)."""

    #: the memories the engine validates in one module (None: no limit found)
    MAX_MEMORIES: int | None = None

    def __init__(self) -> None:
        self._built: dict[tuple[int, ...], list[Part]] = {}

    def prepare(self, plan: Plan) -> dict[str, float]:
        program = lower_plans([plan])
        v = program.variants[0]
        hosts = [f"{i.module}.{i.field}" for x in v.instances for i in x.imports
                 if i.kind == "host"]
        if hosts:
            raise RuntimeUnsupported(
                "a linked program has no embedding to serve host functions "
                f"({', '.join(sorted(set(hosts)))}): host-call runs here only with its wasm "
                "host (host=wasm)")
        if self.MAX_MEMORIES is not None and 1 + memories_added(v) > self.MAX_MEMORIES:
            raise RuntimeUnsupported(
                f"linked into one module, this plan's memories would number "
                f"{1 + memories_added(v)}; the engine validates at most {self.MAX_MEMORIES}")
        return {}

    def build(self, plans: Sequence[Plan], tensors: dict[str, str], settings: MeasureSettings,
              mode: str, slowdown: float) -> None:
        """The plans as one program, or as several where one would hold more memories than
        the engine validates (`program_parts`), each linked (`linked_program`)."""
        data = {name: Path(path).read_bytes() for name, path in tensors.items()}
        built = []
        for part in program_parts(lower_plans(plans).variants, self.MAX_MEMORIES):
            program = lower_plans([plans[i] for i in part])
            t0 = time.perf_counter()
            wasm, lay = linked_program(program, ONCE if mode == "once" else settings, data,
                                       slowdown)
            built.append(Part(part, program, wasm, lay, time.perf_counter() - t0))
        self._built[tuple(map(id, plans))] = built

    def execute(self, plans: Sequence[Plan], tensors: dict[str, str],
                settings: MeasureSettings, mode: str, slowdown: float, out: Path,
                timeout_s: float | None) -> dict[str, Any] | Death:
        """Run the program(s) one after the other: where there are several, each variant
        says which it was in (`subgroup`), so that only samples of one program pair."""
        key = tuple(map(id, plans))
        if key not in self._built:
            self.build(plans, tensors, settings, mode, slowdown)
        parts = self._built.pop(key)
        variants: list[dict[str, Any]] = [{} for _ in plans]
        for p, part in enumerate(parts):
            ran = self._run(part.wasm, timeout_s)
            if isinstance(ran, Death):
                return Death(None if ran.blamed is None else part.indices[ran.blamed],
                             ran.why, ran.status)
            stdout, compile_s = ran
            for k, v in zip(part.indices, parse_report(stdout, part.program, part.lay),
                            strict=True):
                write_outputs(v, out, k)
                # the engine compiles the one linked module (the SDK cannot say how long)
                v["phases"] = {"link_s": part.link_s, "compile_s": {} if math.isnan(compile_s)
                               else {"linked program": compile_s}}
                if len(parts) > 1:
                    v["subgroup"] = p
                variants[k] = v
        return {"peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "variants": variants}

    def _run(self, wasm: bytes, timeout_s: float | None) -> tuple[bytes, float] | Death:
        """The program's stdout and its compile seconds, or how it died."""
        raise NotImplementedError


class WasmtimeLinked(LinkedProgram):
    """wasmtime-py running the linked program through WASI, with the same engine
    configuration as the embedded runtime's spec (bounds, opt, engine). Its cells and
    groups run in process (`harness.standalone.paired`), beside the embedded twin's
    variants of the same group; a probe or a calibration runs the program's `_start`."""

    #: groups and cells run through `harness.standalone.paired`
    IN_PROCESS = True
    MAX_MEMORIES = WASMTIME_MAX_MEMORIES

    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self.embedded = rt.backend()

    @classmethod
    def for_runtime(cls, rt: Runtime) -> WasmtimeLinked:
        return cls(rt)

    def instantiate(self, wasm: bytes) -> tuple[Any, Any, bytearray, float]:
        """The linked program compiled and instantiated with WASI (stdout kept): its store,
        its instance, its stdout and the compile seconds."""
        import wasmtime

        engine = self.embedded._engine("linked")  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        module = wasmtime.Module(engine, wasm)
        compile_s = time.perf_counter() - t0
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        wasi = wasmtime.WasiConfig()
        out = bytearray()
        wasi.stdout_custom = out.extend
        store.set_wasi(wasi)
        return store, linker.instantiate(store, module), out, compile_s

    def _run(self, wasm: bytes, timeout_s: float | None) -> tuple[bytes, float] | Death:
        import wasmtime

        store, instance, out, compile_s = self.instantiate(wasm)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        try:
            start(store)
        except wasmtime.ExitTrap as exc:
            if exc.code != 0:
                return Death(None, f"the program exited with status {exc.code}")
        except wasmtime.Trap as exc:
            return Death(None, "wasm trap: " + " | ".join(
                ln.strip() for ln in str(exc).splitlines() if ln.strip())[:400], "trapped")
        return bytes(out), compile_s

    def info(self) -> dict[str, Any]:
        return {"version": self.embedded.version(),
                "config": {**self.embedded.config(), "driver": "linked",
                           "program": "one WASI command: a wasm driver merged with every "
                                      "instance (Binaryen wasm-merge)"}}


class WasmerSdkLinked(LinkedProgram):
    """Wasmer's Python SDK running the linked program in a sandbox: bytes in, `_start`,
    stdout back. The SDK compiles inside its run and caches the code by content under
    `.cache/wasmer-sdk`; it cannot report the compile time apart."""

    CACHE = CACHE_ROOT / "wasmer-sdk"

    @classmethod
    def for_runtime(cls, rt: Runtime) -> WasmerSdkLinked:
        return cls()

    def _run(self, wasm: bytes, timeout_s: float | None) -> tuple[bytes, float] | Death:
        import asyncio

        from wasmer_sdk import Wasmer, WasmerError  # type: ignore[import-not-found]

        async def run() -> tuple[bytes, float] | Death:
            self.CACHE.mkdir(parents=True, exist_ok=True)
            async with Wasmer(cache_root=str(self.CACHE)) as wasmer:
                pkg = await wasmer.packages.load(wasm)
                async with await wasmer.sandboxes.create(packages=[pkg]) as sandbox:
                    try:
                        out = await sandbox.command(pkg, []).run(timeout=timeout_s,
                                                                 check=False)
                    except WasmerError as exc:
                        said = " | ".join(ln.strip() for ln in str(exc).splitlines()
                                          if ln.strip())[:400]
                        # the SDK says EXECUTION_ERROR for a refused module and a trap alike
                        if "compile error" in said:
                            return Death(None, f"Wasmer cannot compile it: {said}",
                                         "unsupported")
                        return Death(None, f"wasm trap: {said}", "trapped")
            if out.exit_code != 0:
                err = out.stderr.bytes.decode(errors="replace").strip()[-300:]
                return Death(None, f"the program exited with status {out.exit_code} "
                                   f"({out.reason}){': ' + err if err else ''}")
            return bytes(out.stdout.bytes), float("nan")
        return asyncio.run(run())

    def info(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"version": f"wasmer-sdk {version('wasmer-sdk')}", "config": {
            "engine": engine_strings(), "driver": "linked",
            "program": "one WASI command: a wasm driver merged with every instance "
                       "(Binaryen wasm-merge)"}}


def engine_strings() -> str:
    """What the SDK's native library says it is built from (the SDK has no version call):
    its wasmer-wasix crate and its Cranelift."""
    import re

    import wasmer_sdk

    lib = next(Path(wasmer_sdk.__file__).parent.glob("*.so"), None)
    if lib is None:
        return "unknown"
    raw = lib.read_bytes()
    found = [m.decode() for pat in (rb"wasmer-wasix-\d+\.\d+\.\d+", rb"cranelift-codegen-\d+\.\d+\.\d+")
             if (m := (re.search(pat, raw) or [None])[0]) is not None]
    return ", ".join(found) or "unknown"

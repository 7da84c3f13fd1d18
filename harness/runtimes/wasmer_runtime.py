"""wasmer through wasmer-python 1.1.0 (wasmer 2.x), with a choice of compiler.

The worker runs in `.venv-wasmer` (Python 3.10; see `harness.runtimes.wasmer_env`). A
compiler whose wheel cannot be loaded (the LLVM one needs a matching libLLVM) makes the
runtime `unavailable` with the loader's error; the import is tried in a separate process
because a failing native import can abort the interpreter rather than raise.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from harness.plugins.params import Param
from harness.plugins.plan import Device, HostFunc, Import, Memory, Module
from harness.runtimes import wasmer_env
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported, TrapError, trapping_call
from harness.runtimes.venvs import venv_python


class WasmerRuntime(Runtime):
    NAME = "wasmer"
    DESCRIPTION = "wasmer 2.x via wasmer-python 1.1.0 (worker in .venv-wasmer, Python 3.10)"
    PARAMS = (
        Param("compiler", "choice", "cranelift", "wasmer compiler: cranelift (optimising), "
              "singlepass (fast compile, slow code) or llvm", choices=(
                  "cranelift", "singlepass", "llvm")),
    )

    def worker_argv(self) -> list[str]:
        return [str(venv_python(wasmer_env.env_dir())), "-m", "harness.worker"]

    def unavailable_reason(self) -> str | None:
        missing = wasmer_env.missing_reason()
        if missing:
            return missing
        module = f"wasmer_compiler_{self.params['compiler']}"
        try:
            out = subprocess.run([self.worker_argv()[0], "-c", f"import wasmer, {module}"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot start the {wasmer_env.ENV_DIR} interpreter: {exc}"
        if out.returncode != 0:
            lines = [ln.strip() for ln in (out.stderr or out.stdout).splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"exit status {out.returncode}"
            return f"import {module} failed in {wasmer_env.ENV_DIR}: {detail}"
        return None

    def backend(self) -> Backend:
        return WasmerBackend(self.params["compiler"])


class WasmerBackend(Backend):
    def __init__(self, compiler: str) -> None:
        import importlib

        import wasmer

        self.wasmer = wasmer
        self.compiler_name = compiler
        self.compiler = importlib.import_module(f"wasmer_compiler_{compiler}").Compiler
        self._engines: dict[str, Any] = {}

    def version(self) -> str:
        from importlib.metadata import version

        return f"wasmer-python {version('wasmer')}"

    def config(self) -> dict[str, Any]:
        return {"compiler": self.compiler_name, "engine": "universal"}

    def new_store(self, device: Device) -> Any:
        # one engine per plan engine key: devices sharing it share compiled code
        if device.engine not in self._engines:
            self._engines[device.engine] = self.wasmer.engine.Universal(self.compiler)
        return self.wasmer.Store(self._engines[device.engine])

    def compile(self, store: Any, module: Module) -> Any:
        return self.wasmer.Module(store, module.wasm)

    def new_memory(self, store: Any, memory: Memory) -> Any:
        ty = self.wasmer.MemoryType(minimum=memory.min_pages, maximum=memory.max_pages,
                                    shared=memory.shared)
        return self.wasmer.Memory(store, ty)

    def instantiate(self, store: Any, compiled: Any, imports: Sequence[tuple[Import, Any]]) -> Any:
        by_ns: dict[str, dict[str, Any]] = {}
        for imp, obj in imports:
            by_ns.setdefault(imp.module, {})[imp.field] = obj
        bound = {(i.module, i.name) for i in compiled.imports}
        missing = bound - {(imp.module, imp.field) for imp, _ in imports}
        if missing:
            raise ValueError(f"module imports {sorted(missing)} not bound by the plan")
        io = self.wasmer.ImportObject()
        for ns, objs in by_ns.items():
            io.register(ns, objs)
        try:
            return self.wasmer.Instance(compiled, io)
        except RuntimeError as exc:
            if "unreachable" in str(exc) or "trap" in str(exc).lower():
                raise TrapError(str(exc)) from exc
            raise

    def export(self, store: Any, instance: Any, name: str) -> Any:
        return getattr(instance.exports, name)

    def memory_array(self, store: Any, memory: Any) -> np.ndarray:
        if memory.data_size == 0:
            return np.zeros(0, dtype=np.uint8)
        return np.frombuffer(memory.buffer, dtype=np.uint8)

    def memory_pages(self, store: Any, memory: Any) -> int:
        return int(memory.size)

    def grow_memory(self, store: Any, memory: Any, delta: int) -> None:
        memory.grow(delta)

    def make_call(self, store: Any, instance: Any, export: str,
                  args: Sequence[int]) -> Callable[[], None]:
        fn = getattr(instance.exports, export)
        if len(fn.type.params) != len(args):
            raise ValueError(f"{export} takes {len(fn.type.params)} arguments, "
                             f"plan passes {len(args)}")
        return trapping_call(fn, args)

    def host_func(self, store: Any, hf: HostFunc, impl: Callable[..., Any],
                  params: Sequence[str], results: Sequence[str]) -> Any:
        t = self.wasmer.Type
        types = {"i32": t.I32, "i64": t.I64, "f32": t.F32, "f64": t.F64}
        if any(p not in types for p in (*params, *results)):
            raise RuntimeUnsupported(f"wasmer-python has no host function type for {hf.kind}")
        ty = self.wasmer.FunctionType([types[p] for p in params], [types[r] for r in results])
        return self.wasmer.Function(store, impl, ty)

"""wasmtime through wasmtime-py.

Calls go through `wasmtime_func_call_unchecked` with a pre-built raw argument array
instead of `Func.__call__`: the generic path re-reads the function type and converts
every value on each call (tens of µs here); the raw path costs a couple of µs, so the
per-dispatch embedding overhead no longer drowns small kernels. It is still measured
and reported (the `noop` cell).
"""

from __future__ import annotations

import ctypes
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import SpecError
from harness.plugins.params import Param
from harness.plugins.plan import PAGE, Device, HostFunc, Import, Memory, Module
from harness.runtimes.base import Backend, Runtime, TrapError

#: the Pulley interpreter target for 64-bit hosts (wasmtime's `Config::target`)
PULLEY_TARGET = "pulley64"
#: field of wasmtime_val_raw_t holding each value type
_RAW_FIELD = {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"}


def _cause_first(message: str) -> str:
    """A trap message with its cause before the wasm backtrace (reports keep the first lines)."""
    head, sep, cause = message.partition("Caused by:")
    return f"{cause.strip()}\n{head.strip()}" if sep else message


def _no_finalizer(env: Any) -> None:
    """Host functions here carry no environment to free."""


class WasmtimeRuntime(Runtime):
    NAME = "wasmtime"
    DESCRIPTION = "wasmtime (Cranelift JIT) via wasmtime-py; wasmtime@X.Y.Z pins a version"
    PIP_PACKAGE = "wasmtime"
    PARAMS = (
        Param("bounds", "choice", "guard", "guard: guard pages elide bounds checks; explicit: "
              "no guard reservation, every access checked", choices=("guard", "explicit")),
        Param("opt", "choice", "speed", "Cranelift optimisation level",
              choices=("none", "speed", "speed_and_size")),
        Param("engine", "choice", "cranelift", "cranelift: native code; pulley: wasmtime's "
              "portable interpreter (Cranelift compiles to Pulley bytecode)",
              choices=("cranelift", "pulley")),
        Param("driver", "choice", "embedded", "embedded: Python drives every dispatch, copy "
              "and host call; linked: the plan runs as one linked WASI program with a wasm "
              "driver that times itself (host-call only with host=wasm)",
              choices=("embedded", "linked")),
        Param("burn", "int", 0, "inject extra wasm work of N% of each inference's wasm "
              "operators (a loop in a module of its own, sized by fuel): a known regression "
              "that time and both counts see (for testing count-based detection)",
              minimum=0, maximum=1000),
    )

    TWIN_PARAM = "driver"

    def validate(self) -> None:
        super().validate()
        if self.params["burn"] and self.params["engine"] == "pulley":
            raise SpecError("wasmtime: burn= is sized by fuel, which is not counted on "
                            "engine=pulley")
        if self.params["burn"] and self.params["driver"] == "linked":
            raise SpecError("wasmtime: burn= is injected by the embedded worker; "
                            "driver=linked runs the plan as a program of its own")

    def worker_argv(self) -> list[str]:
        argv = super().worker_argv()
        if self.params["driver"] == "linked":
            argv[argv.index("harness.worker")] = "harness.standalone.worker"
        return argv

    def program_backend(self) -> str | None:
        return "harness.standalone.linked:WasmtimeLinked" \
            if self.params["driver"] == "linked" else None

    def unavailable_reason(self) -> str | None:
        if self.params["driver"] == "linked":
            from harness.toolchain import binaryen

            merge = binaryen.wasm_merge()
            if isinstance(merge, str):
                return merge
        return super().unavailable_reason()

    def backend(self) -> Backend:
        return WasmtimeBackend(self.params["bounds"], self.params["opt"], self.params["engine"],
                               burn=self.params["burn"] / 100)


#: the fuel a counting store starts with: more than any cell executes
FUEL = 1 << 62


class WasmtimeBackend(Backend):
    def __init__(self, bounds: str, opt: str, engine: str = "cranelift",
                 fuel: bool = False, burn: float = 0.0) -> None:
        import wasmtime

        self.wt = wasmtime
        from wasmtime import _bindings

        self._raw_call = _bindings._wasmtime_func_call_unchecked
        self._ffi = _bindings
        self.bounds, self.opt, self.engine = bounds, opt, engine
        self.fuel = fuel
        self.burn = burn
        self._engines: dict[str, Any] = {}
        self._keep: list[Any] = []
        self._stores: list[Any] = []
        #: precompiled module files (`precompile`), removed with the backend
        self._images: tempfile.TemporaryDirectory[str] | None = None

    def version(self) -> str:
        from importlib.metadata import version

        return version("wasmtime")

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {"bounds": self.bounds, "opt": self.opt, "compiler": "cranelift",
                               "engine": self.engine}
        if self.engine == "pulley":
            cfg["target"] = PULLEY_TARGET
        if self.bounds == "explicit":
            cfg.update(memory_reservation=0, memory_guard_size=0,
                       memory_reservation_for_growth=0)
        return cfg

    def _engine(self, key: str) -> Any:
        if key not in self._engines:
            cfg = self.wt.Config()
            cfg.wasm_multi_memory = True
            cfg.wasm_simd = True
            # relaxed SIMD in its native (non-deterministic) mode: relaxed_madd is one FMA
            # where the host has FMA3 (wasmtime's default; stated so the config says it)
            cfg.wasm_relaxed_simd = True
            cfg.wasm_relaxed_simd_deterministic = False
            cfg.wasm_bulk_memory = True
            cfg.wasm_memory64 = True
            # pages of 1 byte (custom-page-sizes): a validation switch, nothing else changes
            cfg.wasm_custom_page_sizes = True
            # wasmtime 50 refuses (aborts the process) threads on Pulley: leave them off
            # there, so the shared-memory probe reports the absence instead
            cfg.wasm_threads = self.engine != "pulley"
            cfg.shared_memory = self.engine != "pulley"
            cfg.cranelift_opt_level = self.opt
            # fuel: wasmtime counts one unit per wasm operator executed (a counting twin only:
            # the checks it adds make the code slower, so no timed sample uses it)
            cfg.consume_fuel = self.fuel
            if self.engine == "pulley":
                cfg.target = PULLEY_TARGET
            if self.bounds == "explicit":
                # no virtual reservation and no guard region: Cranelift must emit an
                # explicit bounds check on every access (the memory64 / 32-bit situation)
                cfg.memory_reservation = 0
                cfg.memory_guard_size = 0
                cfg.memory_reservation_for_growth = 0
            self._engines[key] = self.wt.Engine(cfg)
        return self._engines[key]

    def new_store(self, device: Device) -> Any:
        store = self.wt.Store(self._engine(device.engine))
        if self.fuel:
            store.set_fuel(FUEL)
            self._stores.append(store)
        return store

    def counting(self) -> Backend | str:
        if self.engine == "pulley":
            return "wasmtime's Pulley interpreter is not counted here (fuel is measured on Cranelift code)"
        return WasmtimeBackend(self.bounds, self.opt, self.engine, fuel=True, burn=self.burn)

    def fuel_used(self) -> int:
        return sum(FUEL - s.get_fuel() for s in self._stores)

    def compile(self, store: Any, module: Module) -> Any:
        return self.wt.Module(store.engine, module.wasm)

    def precompile(self, store: Any, module: Module) -> Path:
        if self._images is None:
            self._images = tempfile.TemporaryDirectory(prefix="membench-cwasm-")
        path = Path(self._images.name) / f"{module.name.replace('/', '_')}-{id(store)}.cwasm"
        path.write_bytes(self.wt.Module(store.engine, module.wasm).serialize())
        return path

    def load_precompiled(self, store: Any, image: Any) -> Any:
        # the file is mapped, and with it the module's memory image: wasmtime initialises a
        # defined memory from it copy-on-write instead of copying the data segments
        return self.wt.Module.deserialize_file(store.engine, str(image))

    def new_memory(self, store: Any, memory: Memory) -> Any:
        limits = self.wt.Limits(memory.min_pages, memory.max_pages)
        if memory.shared:
            return _shared_memory_class(self.wt)(store.engine,
                                                 self.wt.MemoryType(limits, shared=True,
                                                                    is_64=memory.memory64))
        return self.wt.Memory(store, self.wt.MemoryType(limits, is_64=memory.memory64))

    def instantiate(self, store: Any, compiled: Any, imports: Sequence[tuple[Import, Any]]) -> Any:
        by_key = {(imp.module, imp.field): obj for imp, obj in imports}
        ordered = []
        for it in compiled.imports:
            key = (it.module, it.name)
            if key not in by_key:
                raise ValueError(f"module import {it.module}.{it.name} is not bound by the plan")
            ordered.append(by_key[key])
        try:
            return self.wt.Instance(store, compiled, ordered)
        except self.wt.Trap as exc:
            raise TrapError(_cause_first(str(exc))) from exc

    def export(self, store: Any, instance: Any, name: str) -> Any:
        return instance.exports(store)[name]

    def memory_array(self, store: Any, memory: Any) -> np.ndarray:
        shared = isinstance(memory, self.wt.SharedMemory)  # not tied to a store
        n = memory.data_len() if shared else memory.data_len(store)
        if n == 0:
            return np.zeros(0, dtype=np.uint8)
        ptr = ctypes.cast(memory.data_ptr() if shared else memory.data_ptr(store),
                          ctypes.POINTER(ctypes.c_uint8))
        return np.ctypeslib.as_array(ptr, shape=(n,))

    def memory_pages(self, store: Any, memory: Any) -> int:
        if isinstance(memory, self.wt.SharedMemory):  # its size() is broken in wasmtime-py
            return int(memory.data_len()) // PAGE
        return int(memory.size(store))

    def grow_memory(self, store: Any, memory: Any, delta: int) -> None:
        if isinstance(memory, self.wt.SharedMemory):
            memory.grow(delta)
        else:
            memory.grow(store, delta)

    def make_call(self, store: Any, instance: Any, export: str,
                  args: Sequence[int]) -> Callable[[], None]:
        func = instance.exports(store)[export]
        ty = func.type(store)
        if len(ty.params) != len(args):
            raise ValueError(f"{export} takes {len(ty.params)} arguments, plan passes {len(args)}")
        ffi = self._ffi
        slots = max(len(args), len(ty.results), 1)
        # each argument in the slot field of its parameter's type (i64: memory64 addresses)
        template = [(_RAW_FIELD[str(p)], int(a)) for p, a in zip(ty.params, args, strict=True)]
        raw = (ffi.wasmtime_val_raw_t * slots)()
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        ctx, fref, tref = store._context(), ctypes.byref(func._func), ctypes.byref(trap)
        call, wt = self._raw_call, self.wt
        for i, (slot, a) in enumerate(template):
            setattr(raw[i], slot, a)

        def invoke() -> None:
            err = call(ctx, fref, raw, slots, tref)
            if trap:
                # the trap is the Trap object's to free: hand it a copy of the pointer and
                # clear this one, which the next call reuses (a call that returns without
                # a trap leaves it as it was: an agent calls again after a trap)
                owned = type(trap).from_buffer_copy(trap)
                ctypes.memset(ctypes.addressof(trap), 0, ctypes.sizeof(trap))
                raise TrapError(_cause_first(wt.Trap._from_ptr(owned).message))
            if err:
                raise TrapError(_cause_first(str(wt.WasmtimeError._from_ptr(err))))

        if not ty.results:
            return invoke

        def invoke_resetting() -> None:
            # results overwrite the argument slots: re-set the arguments on every call
            for i, (slot, a) in enumerate(template):
                setattr(raw[i], slot, a)
            invoke()
        return invoke_resetting

    def host_func(self, store: Any, hf: HostFunc, impl: Callable[..., Any],
                  params: Sequence[str], results: Sequence[str]) -> Any:
        wt = self.wt
        vt = {"i32": wt.ValType.i32(), "i64": wt.ValType.i64(), "f32": wt.ValType.f32(),
              "f64": wt.ValType.f64()}
        ty = wt.FuncType([vt[p] for p in params], [vt[r] for r in results])
        return self._raw_host_func(store, ty, impl, params, results)

    def _raw_host_func(self, store: Any, ty: Any, impl: Callable[..., Any],
                       params: Sequence[str], results: Sequence[str]) -> Any:
        """A host function on wasmtime's unchecked path: the callback reads and writes the
        raw value slots itself. wasmtime-py's generic `Func` converts every value through
        type objects (tens of µs per call here); this costs a plain ctypes callback. An
        exception from `impl` becomes a trap carrying the exception's message."""
        ffi, wt = self._ffi, self.wt
        getters = [_RAW_FIELD[p] for p in params]
        setter = _RAW_FIELD[results[0]] if results else None
        n = len(getters)

        def callback(env: Any, caller: Any, raw: Any, nraw: int) -> int:
            try:
                out = impl(*[getattr(raw[i], getters[i]) for i in range(n)])
                if setter is not None:
                    setattr(raw[0], setter, out)
                return 0
            except BaseException as exc:  # any failure of the host function is a trap
                msg = f"{type(exc).__name__}: {exc}".encode()
                trap = ffi.wasmtime_trap_new(ctypes.create_string_buffer(msg), len(msg))
                return ctypes.cast(trap, ctypes.c_void_p).value or 0

        cb = ffi.wasmtime_func_unchecked_callback_t(callback)
        fin = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(_no_finalizer)
        func = ffi.wasmtime_func_t()
        ffi.wasmtime_func_new_unchecked(store._context(), ty.ptr(), cb, None, fin,
                                        ctypes.byref(func))
        self._keep.append((cb, fin))  # the callbacks must outlive the store
        return wt.Func._from_raw(func)

    def trap_types(self) -> tuple[type[BaseException], ...]:
        return (TrapError, self.wt.Trap)


def _shared_memory_class(wt: Any) -> Any:
    """wasmtime-py 50's `SharedMemory._as_extern` stores a pointer to the pointer in the
    extern union (`TypeError: incompatible types, LP_LP_wasmtime_sharedmemory`), so a
    shared memory cannot be passed as an import. This subclass builds the extern right."""
    from wasmtime import _ffi as ffi

    class SharedMemory(wt.SharedMemory):  # type: ignore[misc, name-defined]
        def _as_extern(self) -> Any:
            union = ffi.wasmtime_extern_union(sharedmemory=self.ptr())
            return ffi.wasmtime_extern_t(ffi.WASMTIME_EXTERN_SHAREDMEMORY, union)

    return SharedMemory

"""wasm3 (an interpreter) through pywasm3.

wasm3's linear memory belongs to its *runtime*, not to a module: every module loaded into
one wasm3 runtime reads and writes the same single memory, and a module that defines a
memory resizes that one. The backend therefore maps plan objects onto wasm3 runtimes:

* a host-created memory gets a wasm3 runtime of its own (sized by loading a one-line
  module that defines the memory); every instance importing that memory is loaded into it;
* an instance that defines its own memory (or has none) gets a fresh wasm3 runtime, so
  `per-module`'s modules keep private memories as the plan says;
* what wasm3 cannot express fails loudly: an instance importing two memories or
  importing and defining one (no multi-memory), or importing another instance's function
  (pywasm3 links only Python callables) becomes `unsupported` with the reason.

Capabilities (no SIMD, no multi-memory, ...) are not written down here: `membench probe`
measures them by running tiny modules.

wasm3 looks functions up by name across every module of a runtime, newest first, so each
instance's exports are resolved right after it is loaded, before a later module with the
same export names can shadow them. pywasm3 keeps a pointer into the wasm bytes; the
backend keeps the bytes referenced for as long as the module lives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.plugins.params import Param
from harness.plugins.plan import Device, HostFunc, Import, Memory, Module
from harness.plugins.wasmbin import module_info, uleb128
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported, TrapError, trapping_call

_SIG = {"i32": "i", "i64": "I", "f32": "f", "f64": "F"}


class Wasm3Runtime(Runtime):
    NAME = "wasm3"
    DESCRIPTION = "wasm3 interpreter via pywasm3 (one memory per wasm3 runtime)"
    PARAMS = (
        Param("stack", "int", 1024, "wasm3 stack size in KiB, per wasm3 runtime", minimum=16),
    )

    def unavailable_reason(self) -> str | None:
        import importlib.util
        import sys

        if importlib.util.find_spec("wasm3") is None:
            return (f"pywasm3 is not installed for Python {sys.version.split()[0]} "
                    "(`make env` installs it; it builds from source and needs a C compiler)")
        return None

    def backend(self) -> Backend:
        return Wasm3Backend(int(self.params["stack"]) * 1024)


@dataclass
class _Group:
    """One wasm3 runtime: one linear memory and the modules loaded into it."""

    rt: Any
    keep: list[Any] = field(default_factory=list)  # wasm bytes and modules kept alive
    has_memory: bool = False


@dataclass
class _Store:
    env: Any
    groups: list[_Group] = field(default_factory=list)


@dataclass(frozen=True)
class _Compiled:
    wasm: bytes
    defines_memory: bool
    func_exports: tuple[str, ...]
    memory_exports: tuple[str, ...]


@dataclass(frozen=True)
class _MemoryRef:
    group: _Group


@dataclass(frozen=True)
class _HostFn:
    impl: Callable[..., Any]
    signature: str


@dataclass
class _Instance:
    group: _Group
    compiled: _Compiled
    funcs: dict[str, Any]


class Wasm3Backend(Backend):
    def __init__(self, stack_bytes: int) -> None:
        import wasm3

        self.w3 = wasm3
        self.stack_bytes = stack_bytes

    def version(self) -> str:
        from importlib.metadata import version

        return f"{self.w3.M3_VERSION} (pywasm3 {version('pywasm3')})"

    def config(self) -> dict[str, Any]:
        return {"engine": "interpreter", "stack_bytes": self.stack_bytes,
                "memory_model": "one wasm3 runtime per linear memory; instances importing "
                                "a memory are loaded into its runtime"}

    def _group(self, store: _Store) -> _Group:
        g = _Group(store.env.new_runtime(self.stack_bytes))
        store.groups.append(g)
        return g

    def new_store(self, device: Device) -> Any:
        return _Store(self.w3.Environment())

    def compile(self, store: Any, module: Module) -> Any:
        wasm = bytes(module.wasm)
        store.env.parse_module(wasm)  # validate now, so compile errors surface here
        info = module_info(wasm)
        return _Compiled(wasm, bool(info.defined_memories),
                         tuple(e.name for e in info.exports if e.kind == "func"),
                         tuple(e.name for e in info.exports if e.kind == "memory"))

    def new_memory(self, store: Any, memory: Memory) -> Any:
        group = self._group(store)
        owner = _memory_module(memory.min_pages, memory.max_pages, memory.shared)
        mod = store.env.parse_module(owner)
        group.rt.load(mod)
        group.keep += [owner, mod]
        group.has_memory = True
        return _MemoryRef(group)

    def instantiate(self, store: Any, compiled: Any, imports: Sequence[tuple[Import, Any]]) -> Any:
        mems = [obj for imp, obj in imports if isinstance(obj, _MemoryRef)]
        if len({id(m.group) for m in mems}) > 1:
            raise RuntimeUnsupported("a wasm3 runtime holds one memory; this instance imports "
                                     f"{len(mems)} different memories")
        if mems and compiled.defines_memory:
            raise RuntimeUnsupported("a wasm3 runtime holds one memory; this instance imports "
                                     "one and defines another")
        for imp, obj in imports:
            if not isinstance(obj, (_MemoryRef, _HostFn)):
                raise RuntimeUnsupported(
                    f"pywasm3 cannot link another instance's export ({imp.target}) into an "
                    "import: it links only Python callables")
        group = mems[0].group if mems else self._group(store)
        mod = store.env.parse_module(compiled.wasm)
        try:
            group.rt.load(mod)
            for imp, obj in imports:
                if isinstance(obj, _HostFn):
                    mod.link_function(imp.module, imp.field, obj.signature, obj.impl)
            # resolve now: a later module with the same export names would shadow these
            funcs = {name: group.rt.find_function(name) for name in compiled.func_exports}
        except RuntimeError as exc:
            if "[trap]" in str(exc):
                raise TrapError(str(exc)) from exc
            raise
        group.keep += [compiled.wasm, mod]
        group.has_memory = group.has_memory or compiled.defines_memory
        return _Instance(group, compiled, funcs)

    def export(self, store: Any, instance: Any, name: str) -> Any:
        if name in instance.compiled.memory_exports:
            return _MemoryRef(instance.group)
        if name in instance.funcs:
            return instance.funcs[name]
        raise KeyError(f"instance has no export {name!r}")

    def memory_array(self, store: Any, memory: Any) -> np.ndarray:
        if not memory.group.has_memory:
            return np.zeros(0, dtype=np.uint8)
        return np.frombuffer(memory.group.rt.get_memory(0), dtype=np.uint8)

    def make_call(self, store: Any, instance: Any, export: str,
                  args: Sequence[int]) -> Callable[[], None]:
        fn = instance.funcs[export]
        if fn.num_args != len(args):
            raise ValueError(f"{export} takes {fn.num_args} arguments, plan passes {len(args)}")
        return trapping_call(fn, args)

    def host_func(self, store: Any, hf: HostFunc, impl: Callable[..., Any],
                  params: Sequence[str], results: Sequence[str]) -> Any:
        if len(results) > 1:
            raise RuntimeUnsupported("pywasm3 host functions return at most one value")
        ret = _SIG[results[0]] if results else "v"
        return _HostFn(impl, f"{ret}({''.join(_SIG[p] for p in params)})")


def _memory_module(min_pages: int, max_pages: int | None, shared: bool) -> bytes:
    """`(module (memory min max? shared?))` in binary: allocates a wasm3 runtime's memory."""
    flags = (1 if max_pages is not None else 0) | (2 if shared else 0)
    limits = bytes([flags]) + uleb128(min_pages) + (uleb128(max_pages)
                                                  if max_pages is not None else b"")
    body = b"\x01" + limits
    return b"\x00asm\x01\x00\x00\x00" + b"\x05" + uleb128(len(body)) + body

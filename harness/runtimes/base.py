"""The narrow interface every runtime sits behind (in the manner of Sightglass's engines).

`Runtime` is the registered plugin, used by the harness process: it says how to start the
worker that executes plans, and whether it can start at all. Runtimes embedded in Python
also provide a `Backend`: a handful of primitives (store, compile, memory, instantiate,
call) that `harness.runtimes.executor` turns into plan execution, so no runtime contains
strategy-specific code.
"""

from __future__ import annotations

import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from harness.core.errors import SpecError
from harness.plugins.params import Param
from harness.plugins.plan import Device, HostFunc, Import, Memory, Module, Plan
from harness.plugins.registry import Plugin

#: Every runtime accepts `slowdown=N`: inside every timed sample, after its inferences, the
#: worker does real extra work (a busy computation, never a sleep) for N% of their measured
#: time (`measure.time_steady`). It exists to test regression detection against a known,
#: proportional slowdown.
SLOWDOWN = Param("slowdown", "int", 0, "inject real extra work of N% of each sample's "
                 "inference time (for testing regression detection)", minimum=0, maximum=1000)


class Runtime(Plugin):
    """Parent-side description of a runtime (registered under `membench.runtimes`)."""

    #: the language of the embedding: what drives each dispatch, copy and host call, and
    #: what `host-call`'s own host functions (`host=python`) are written in
    HOST_LANGUAGE: ClassVar[str] = "Python"

    #: PyPI package providing the runtime; set it to allow `name@version` pins, whose
    #: workers then run in a cached environment with that version (harness.runtimes.venvs)
    PIP_PACKAGE: ClassVar[str | None] = None

    #: the largest module the engine compiles (bytes), and where that limit is set; None:
    #: no limit below what the machine can hold
    MAX_MODULE_BYTES: ClassVar[int | None] = None
    MAX_MODULE_SOURCE: ClassVar[str] = ""

    #: how `--measure insts` marks a counted worker's segments: "client-request" (callgrind's
    #: client requests, labelled: the Python worker) or "fsync" (an fsync per mark, which
    #: callgrind dumps before, in order, main thread only: a JavaScript worker); None: the
    #: Python worker's when `worker_argv` runs it, else not counted
    INSTS_MARKS: ClassVar[str | None] = None

    def insts_argv(self) -> list[str]:
        """The worker's command line for a run under callgrind."""
        return self.worker_argv()

    def refuses(self, plan: Plan) -> str | None:
        """Why the engine would refuse `plan` by a limit of its own, known before any work
        (a module over its size limit once its weight segments are filled), or None."""
        limit = self.MAX_MODULE_BYTES
        if limit is None:
            return None
        for module in plan.modules:
            size = plan.filled_size(module)
            if size > limit:
                return (f"module {module.name} is {size} bytes with its weights; {self.NAME} "
                        f"compiles modules of at most {limit} ({self.MAX_MODULE_SOURCE})")
        return None

    @classmethod
    def declared_params(cls) -> tuple[Param, ...]:
        return (*cls.PARAMS, SLOWDOWN)

    @classmethod
    def accepts_version(cls) -> bool:
        return cls.PIP_PACKAGE is not None

    def prepare(self) -> None:
        """Create whatever the worker needs (e.g. a pinned version's environment).

        Called once per run before probing; raises MembenchError when impossible.
        """
        if self.version_pin and self.PIP_PACKAGE:
            from harness.runtimes.venvs import ensure_worker_env

            ensure_worker_env(self.PIP_PACKAGE, self.version_pin)

    def worker_argv(self) -> list[str]:
        """Command that starts this runtime's worker; the request path is appended."""
        if self.version_pin and self.PIP_PACKAGE:
            from harness.runtimes.venvs import venv_dir, venv_python

            return [str(venv_python(venv_dir(self.PIP_PACKAGE, self.version_pin))),
                    "-m", "harness.worker"]
        return [sys.executable, "-m", "harness.worker"]

    def unavailable_reason(self) -> str | None:
        """Why this runtime cannot run on this machine (None when it can)."""
        return None

    #: versions `membench probe` lists beside the plain name (`v8@20`), so that an engine
    #: this machine lacks still shows, as unavailable with the reason
    PROBE_VERSIONS: ClassVar[tuple[str, ...]] = ()

    #: a runtime whose spec takes `flags=` (engine flags or options, `+`-separated): the
    #: form each must have and how to say it; None: no `flags` parameter
    FLAG_FORM: ClassVar[tuple[re.Pattern[str], str] | None] = None
    #: the flag that turns a capability on where the engine ships it off
    FEATURE_FLAGS: ClassVar[dict[str, str]] = {}

    def validate(self) -> None:
        if self.FLAG_FORM is not None:
            form, said = self.FLAG_FORM
            bad = [f for f in self.spec_flags() if not form.match(f)]
            if bad:
                raise SpecError(f"{self.NAME}: malformed flag(s) {', '.join(bad)}: each must "
                                f"look like {said}, +-separated")

    def spec_flags(self) -> tuple[str, ...]:
        """The spec's own `flags=`, in order (empty without the parameter)."""
        return tuple(f for f in str(self.params.get("flags", "")).split("+") if f)

    def with_feature(self, capability: str) -> str | None:
        """A spec of this runtime with `capability` turned on by a flag (FEATURE_FLAGS),
        where the engine ships it off (`membench probe` tries it); None when no flag is
        known. A flag is never on unless a spec names it."""
        flag = self.FEATURE_FLAGS.get(capability)
        if flag is None or flag in self.spec_flags():
            return None
        return self.spec_with("flags", "+".join((*self.spec_flags(), flag)))

    def spec_with(self, key: str, value: str) -> str:
        """This runtime's spec with parameter `key` set to `value` (version pin kept)."""
        from harness.plugins.spec import Spec, parse_spec

        spec = parse_spec(self.spec)
        params = {**dict(spec.params), key: value}
        return str(Spec(spec.name, tuple(params.items()), spec.version))

    @property
    def hosts_twins(self) -> bool:
        """Whether this runtime's worker runs its group twins' variants beside its own."""
        return self.spec != self.group_spec()

    def program_backend(self) -> str | None:
        """A runtime that runs plans as standalone programs (`harness.standalone.worker`):
        its back end as "module:Class" (the class builds itself with `for_runtime(self)`);
        None for one that embeds the plan."""
        return None

    def backend(self) -> Backend:
        """The in-worker backend (called inside the worker process only)."""
        raise NotImplementedError(f"{self.NAME} has no Python backend; it runs its own worker")


class TrapError(Exception):
    """A wasm trap raised while executing a plan (the cell's status becomes `trapped`)."""


class RuntimeUnsupported(Exception):
    """The runtime cannot express part of a plan (the cell's status becomes `unsupported`,
    with this message as the reason): e.g. an embedding with no way to link one instance's
    export into another instance."""


def trapping_call(fn: Callable[..., Any], args: Sequence[int],
                  trap: type[BaseException] = RuntimeError) -> Callable[[], None]:
    """`fn(*args)` as a zero-argument callable; `trap` exceptions become TrapError.

    For embeddings (pywasm3, wasmer-python) that report wasm traps as a plain exception type.
    """
    argv = tuple(int(a) for a in args)

    def invoke() -> None:
        try:
            fn(*argv)
        except trap as exc:
            raise TrapError(str(exc)) from exc
    return invoke


class Backend(ABC):
    """Primitives a Python-embedded runtime provides to the generic plan executor."""

    #: extra wasm work injected after every inference, as a fraction of its wasm operators
    #: (a runtime's `burn=N`; `LoadedPlan` sizes and runs it): a known regression
    burn: float = 0.0

    @abstractmethod
    def version(self) -> str:
        ...

    def config(self) -> dict[str, Any]:
        """The effective configuration (recorded in every result row)."""
        return {}

    @abstractmethod
    def new_store(self, device: Device) -> Any:
        """A store (or runtime) for one device."""

    @abstractmethod
    def compile(self, store: Any, module: Module) -> Any:
        """Compile `module` for use in `store`'s engine."""

    def precompile(self, store: Any, module: Module) -> Any:
        """An engine-precompiled file of `module` (an ahead-of-time build, not timed), for
        `load_precompiled`: where the engine maps such a file, the memory image of the
        module's data segments is mapped copy-on-write."""
        raise RuntimeUnsupported(f"{self.version()} loads no precompiled module files "
                                 "(wasmtime's Module.deserialize_file maps one)")

    def load_precompiled(self, store: Any, image: Any) -> Any:
        """The compiled module `precompile` made, loaded from its file (timed as compile)."""
        raise RuntimeUnsupported(f"{self.version()} loads no precompiled module files")

    @abstractmethod
    def new_memory(self, store: Any, memory: Memory) -> Any:
        """A host-created wasm memory."""

    @abstractmethod
    def instantiate(self, store: Any, compiled: Any, imports: Sequence[tuple[Import, Any]]) -> Any:
        """Instantiate with every import already resolved to a runtime object."""

    @abstractmethod
    def export(self, store: Any, instance: Any, name: str) -> Any:
        """An export of an instance (memory or function)."""

    @abstractmethod
    def memory_array(self, store: Any, memory: Any) -> np.ndarray:
        """A uint8 NumPy view of a wasm memory's current bytes (valid until it grows)."""

    @abstractmethod
    def make_call(self, store: Any, instance: Any, export: str,
                  args: Sequence[int]) -> Callable[[], None]:
        """A zero-argument callable invoking `export(*args)` as cheaply as the embedding allows."""

    def host_func(self, store: Any, hf: HostFunc, impl: Callable[..., Any],
                  params: Sequence[str], results: Sequence[str]) -> Any:
        """A host function object wrapping `impl` with the given wasm signature."""
        raise NotImplementedError("this runtime cannot create host functions")

    def memory_pages(self, store: Any, memory: Any) -> int:
        """The pages a wasm memory has now."""
        raise RuntimeUnsupported(f"{self.version()}: the host cannot read a memory's size, "
                                 "so it cannot grow one under live modules")

    def grow_memory(self, store: Any, memory: Any, delta: int) -> None:
        """Grow a wasm memory by `delta` pages from the host, its instances live."""
        raise RuntimeUnsupported(f"{self.version()}: the host cannot grow a memory here")

    def trap_types(self) -> tuple[type[BaseException], ...]:
        """Exception types the runtime raises for a wasm trap."""
        return (TrapError,)

    def counting(self) -> Backend | str:
        """A twin of this backend whose stores count the wasm operators they execute
        (`fuel_used`), or why this engine cannot."""
        return f"{self.version()} counts no executed operators"

    def fuel_used(self) -> int:
        """Operators executed so far by every store of a counting backend."""
        raise NotImplementedError

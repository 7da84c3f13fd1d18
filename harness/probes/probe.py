"""Capability probing: tiny plans, each needing one capability, run through the same worker
path as real cells. A capability is present when its plan compiles, runs and writes the
expected bytes — measured, never assumed from a version number.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.codegen.module import assemble
from harness.plugins.plan import (
    Call,
    Device,
    HostFunc,
    Import,
    Instance,
    Memory,
    Module,
    Parallel,
    Plan,
    Read,
    Region,
)
from harness.plugins.spec import parse_spec
from harness.runtimes.base import Runtime
from harness.store.manifest import CAPABILITIES
from harness.worker.launch import WorkerOutcome, run_worker

_HEAP = '(import "env" "heap" (memory 1))'
#: the address the memory64-4gib probe writes, and its memory's size in wasm pages
ABOVE_4GIB = (1 << 32) + 8
ABOVE_4GIB_PAGES = (1 << 16) + 1
_PROBES: dict[str, tuple[str, str]] = {
    # capability: (module WAT body, memory layout: "host" | "export" | "shared" | "host+func")
    "imported-memory": (_HEAP + '(func (export "run") (i32.store (i32.const 0) (i32.const 42)))',
                        "host"),
    "exported-memory": ('(memory (export "memory") 1)'
                        '(func (export "run") (i32.store (i32.const 0) (i32.const 42)))', "export"),
    "multi-memory": ('(import "env" "heap" (memory $heap 1)) (memory $priv 1)'
                     '(func (export "run") (i32.store $priv (i32.const 8) (i32.const 7))'
                     '(i32.store $heap (i32.const 0) (i32.mul (i32.load $priv (i32.const 8))'
                     ' (i32.const 6))))', "host16z"),
    "shared-memory": ('(import "env" "heap" (memory 1 1 shared))'
                      '(func (export "run") (i32.atomic.store (i32.const 0) (i32.const 42)))',
                      "shared"),
    # two agents, each in a store of its own on a thread of its own, storing at once into
    # one shared memory (a Parallel step): what threads=N plans need
    "threads": ('(import "env" "heap" (memory 1 1 shared))'
                '(func (export "run") (param $at i32) (i32.atomic.store (local.get $at)'
                ' (i32.const 42)))', "agents"),
    "simd128": (_HEAP + '(func (export "run") (v128.store (i32.const 0) (i32x4.add'
                ' (i32x4.splat (i32.const 40)) (i32x4.splat (i32.const 2)))))', "host16"),
    # 6 * 7 + 0 is exact whether relaxed_madd fuses or not
    "relaxed-simd": (_HEAP + '(func (export "run") (v128.store (i32.const 0)'
                     ' (i32x4.trunc_sat_f32x4_s (f32x4.relaxed_madd (f32x4.splat (f32.const 6))'
                     ' (f32x4.splat (f32.const 7)) (f32x4.splat (f32.const 0))))))', "host16"),
    "bulk-memory": (_HEAP + '(func (export "run") (memory.fill (i32.const 0) (i32.const 42)'
                    ' (i32.const 1)) (memory.copy (i32.const 4) (i32.const 0) (i32.const 4)))',
                    "host8"),
    # 64-bit addresses and page counts: growing by 2^32 pages must fail (-1), where a
    # runtime that reads the operand as 32 bits grows by 0 pages and gets 1 back
    "memory64": ('(memory (export "memory") i64 1)'
                 '(func (export "run") (i32.store (i64.const 0) (i32.add (i32.const 43)'
                 ' (i32.wrap_i64 (memory.grow (i64.const 0x100000000))))))', "export"),
    # a 64-bit memory of 4 GiB + 64 KiB, touched at one address above 4 GiB by the module
    # and read there by the host (sparse: the rest is reserved, never committed)
    "memory64-4gib": (f'(memory (export "memory") i64 {ABOVE_4GIB_PAGES})'
                      f'(func (export "run") (i32.store (i64.const {ABOVE_4GIB}) (i32.const 42)))',
                      "export4g"),
    # pages of one byte: growing a 1-byte memory by 3 pages returns its old size, 1, and
    # makes byte 3 addressable (a store there traps otherwise); the result is one byte,
    # read where the memory was at load (the harness takes its views of memories once)
    "custom-page-sizes": ('(memory (export "memory") 1 (pagesize 1))'
                          '(func (export "run") (i32.store8 (i32.const 0) (i32.add'
                          ' (i32.const 41) (memory.grow (i32.const 3))))'
                          ' (i32.store8 (i32.const 3) (i32.const 7)))', "export1"),
    # a module loaded from an engine-precompiled file (its data segment a memory image the
    # engine may map copy-on-write): the image's byte must be in the memory it defines
    "module-image": ('(memory (export "memory") 1) (data (i32.const 0) "\\2a")'
                     '(func (export "run"))', "image"),
    "tail-call": (_HEAP + '(func $put (param i32) (i32.store (i32.const 0) (local.get 0)))'
                  '(func (export "run") (return_call $put (i32.const 42)))', "host"),
    "host-func-import": ('(import "env" "noop" (func $noop))' + _HEAP +
                         '(func (export "run") (call $noop) (i32.store (i32.const 0)'
                         ' (i32.const 42)))', "host+func"),
    # a function another instance exports, as an import (host-call's wasm host shim)
    "instance-func-import": ('(import "env" "f" (func $f (result i32)))' + _HEAP +
                             '(func (export "run") (i32.store (i32.const 0) (call $f)))',
                             "host+instance"),
}
_CALLEE = '(module (func (export "f") (result i32) (i32.const 42)))'

_EXPECT = {"agents": "2a0000002a000000", "host": "2a000000", "export": "2a000000", "export4g": "2a000000", "image": "2a000000", "export1": "2a", "shared": "2a000000",
           "host+func": "2a000000", "host+instance": "2a000000", "host16": "2a000000" * 4,
           # the private store must not land in the heap (a runtime that aliases every
           # memory to one, like wasm3's single memory per runtime, fails here)
           "host16z": "2a000000" + "00" * 12, "host8": "2a0000002a000000"}


def probe_plan(capability: str) -> tuple[Plan, str]:
    """The probe plan for one capability and the hex bytes it must produce."""
    body, layout = _PROBES[capability]
    wasm = assemble(f"(module {body})")
    dev = Device("dev0")
    imports: list[Import] = []
    memories: list[Memory] = []
    host_funcs: list[HostFunc] = []
    if layout in ("export", "export1", "export4g", "image"):
        memories.append(Memory("m", "dev0", "export", instance="probe", export="memory"))
    else:
        memories.append(Memory("m", "dev0", "host", min_pages=1,
                               max_pages=1 if layout == "shared" else None,
                               shared=layout == "shared"))
        imports.append(Import("env", "heap", "memory", "m"))
    modules = [Module("probe", wasm, precompiled=layout == "image")]
    instances: list[Instance] = []
    if layout == "host+func":
        host_funcs.append(HostFunc("noop", "noop", "dev0"))
        imports.insert(0, Import("env", "noop", "func", "host:noop"))
    if layout == "host+instance":
        modules.append(Module("callee", assemble(_CALLEE)))
        instances.append(Instance("callee", "callee", "dev0"))
        imports.insert(0, Import("env", "f", "func", "callee.f"))
    if layout == "agents":
        return _agents_plan(wasm), _EXPECT[layout]
    size = {"host16": 16, "host16z": 16, "host8": 8, "export1": 1}.get(layout, 4)
    at = ABOVE_4GIB if layout == "export4g" else 0
    plan = Plan(workload=f"probe:{capability}", strategy="probe", devices=(dev,),
                memories=tuple(memories), modules=tuple(modules),
                instances=(*instances, Instance("probe", "probe", "dev0", tuple(imports))),
                placements=(), setup=(),
                run=(Call("probe", "run", ()), Read("out", Region("m", at, size))),
                host_funcs=tuple(host_funcs), requires=frozenset({capability}))
    return plan, _EXPECT[layout]


def _agents_plan(wasm: bytes) -> Plan:
    """The threads probe: agents 0 and 1 store 42 at bytes 0 and 4 of one shared memory."""
    heap = (Import("env", "heap", "memory", "m"),)
    calls = tuple((Call(f"probe{i}", "run", (4 * i,)),) for i in range(2))
    return Plan(workload="probe:threads", strategy="probe",
                devices=(Device("dev0"), Device("dev1", agent=1)),
                memories=(Memory("m", "dev0", "host", min_pages=1, max_pages=1, shared=True),),
                modules=(Module("probe", wasm),),
                instances=(Instance("probe0", "probe", "dev0", heap),
                           Instance("probe1", "probe", "dev1", heap)),
                placements=(), setup=(),
                run=(Parallel(calls), Read("out", Region("m", 0, 8))),
                requires=frozenset({"threads"}))


@dataclass(frozen=True)
class ProbeResult:
    runtime: str
    status: str                       # ok, or why the runtime could not be probed
    message: str = ""
    version: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)

    def has(self, capability: str) -> bool:
        return bool(self.capabilities.get(capability, {}).get("ok"))

    def missing(self, required: frozenset[str]) -> list[str]:
        return sorted(c for c in required if not self.has(c))

    def to_dict(self) -> dict[str, Any]:
        return {"runtime": self.runtime, "status": self.status, "message": self.message,
                "version": self.version, "info": self.info, "capabilities": self.capabilities}


def probe_runtime(runtime: Runtime, timeout_s: float = 60.0, workdir: Path | None = None,
                  try_flags: bool = False) -> ProbeResult:
    """Every capability of `runtime`, measured. With `try_flags`, each capability it lacks
    is probed again with the flag that turns it on (`Runtime.with_feature`), and the
    outcome recorded under `flag` beside the plain one: what the engine needs, never
    turned on in the plain spec."""
    from harness.core.errors import MembenchError

    try:
        runtime.prepare()
    except MembenchError as exc:
        return ProbeResult(runtime.spec, "unavailable", str(exc))
    reason = runtime.unavailable_reason()
    if reason:
        return ProbeResult(runtime.spec, "unavailable", reason)
    outcome = _probe_worker(runtime, CAPABILITIES, timeout_s, workdir)
    resp = outcome.response or {}
    if outcome.status != "ok":
        return ProbeResult(runtime.spec, "unavailable",
                           f"worker could not start: {outcome.message}")
    info = resp.get("runtime", {})
    caps: dict[str, dict[str, Any]] = dict(resp.get("capabilities", {}))
    if try_flags:
        for cap in CAPABILITIES:
            spec = runtime.with_feature(cap) if not caps.get(cap, {}).get("ok") else None
            if spec is not None:
                caps[cap] = {**caps.get(cap, {}),
                             "flag": _probe_flagged(runtime, spec, cap, timeout_s, workdir)}
    return ProbeResult(runtime.spec, "ok", "", str(info.get("version", "")), info, caps)


def _probe_worker(runtime: Runtime, caps: Sequence[str], timeout_s: float,
                  workdir: Path | None) -> WorkerOutcome:
    with tempfile.TemporaryDirectory(prefix="membench-probe-", dir=workdir) as tmp:
        base = Path(tmp)
        probes = []
        for cap in caps:
            plan, expect = probe_plan(cap)
            path = base / f"probe_{cap}.json"
            path.write_text(plan.to_json(), encoding="utf-8")
            probes.append({"capability": cap, "plan_path": str(path), "expect": {"out": expect}})
        return run_worker(runtime, {"kind": "probe", "runtime": runtime.spec,
                                    "probes": probes}, base, timeout_s)


def _probe_flagged(runtime: Runtime, spec: str, cap: str, timeout_s: float,
                   workdir: Path | None) -> dict[str, Any]:
    """One capability under the spec that flags it on: {spec, ok, detail}."""
    flagged = type(runtime).from_spec(parse_spec(spec))
    assert isinstance(flagged, Runtime)
    reason = flagged.unavailable_reason()
    if reason:  # e.g. a Node that does not know the flag refuses to start
        return {"spec": spec, "ok": False, "detail": reason}
    outcome = _probe_worker(flagged, (cap,), timeout_s, workdir)
    got = (outcome.response or {}).get("capabilities", {}).get(cap)
    if outcome.status != "ok" or not isinstance(got, dict):
        return {"spec": spec, "ok": False, "detail": outcome.message or "no answer"}
    return {"spec": spec, "ok": bool(got.get("ok")), "detail": str(got.get("detail", ""))}

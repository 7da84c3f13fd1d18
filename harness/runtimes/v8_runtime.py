"""V8 through Node.js: a worker in plain JavaScript (`node_worker.js` over `js_protocol.js`,
no npm packages) speaking the same JSON protocol as `harness.worker`, with the
host-function catalogue implemented in JavaScript (`js_hostfuncs.js`).

Which Node (and so which V8): `v8` is a current LTS Node installed from the npm registry,
`v8@N` another version, served by the system `node` when its version matches
(`harness.toolchain.node_dist`). The worker reports the V8 and Node versions it ran.

`tier` selects V8's WebAssembly compilers through Node's V8 flags: `default` (Liftoff
baseline first, TurboFan tier-up for hot functions), `liftoff` (baseline compiler only:
`--liftoff --no-wasm-tier-up`) or `turbofan` (optimising compiler only: `--no-liftoff`).
`flags` passes further V8 flags, `+`-separated (`flags=--experimental-wasm-multi-memory`):
a feature behind a flag is on only when a spec says so, and the spec says it in every
result.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import ClassVar

from harness.plugins.params import Param
from harness.runtimes.base import Runtime
from harness.toolchain.node_dist import NodeBuild, install, is_installed, resolve

WORKER_JS = Path(__file__).with_name("node_worker.js")
HOSTFUNCS_JS = Path(__file__).with_name("js_hostfuncs.js")
TIER_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "liftoff": ("--liftoff", "--no-wasm-tier-up"),
    "turbofan": ("--no-liftoff",),
}
MIN_NODE = 16


class V8Runtime(Runtime):
    NAME = "v8"
    DESCRIPTION = ("V8 via Node.js (plain-JavaScript worker); v8 is Node "
                   "from the npm registry, v8@N another Node version")
    HOST_LANGUAGE = "JavaScript"
    #: V8's kV8MaxWasmModuleSize (Node 24: "buffer source exceeds maximum size of 1073741824")
    MAX_MODULE_BYTES = 1 << 30
    MAX_MODULE_SOURCE = "V8's module size limit, kV8MaxWasmModuleSize"
    PARAMS = (
        Param("tier", "choice", "default", "V8 wasm compilers: default (Liftoff, then "
              "TurboFan tier-up), liftoff (baseline only), turbofan (optimising only)",
              choices=tuple(TIER_FLAGS)),
        Param("flags", "str", "", "extra V8 flags, +-separated "
              "(e.g. --experimental-wasm-multi-memory); off unless given"),
        Param("stale_views", "bool", False, "fault injection: the worker keeps a memory's "
              "view after the memory grows (a detached ArrayBuffer), the bug a JS host must "
              "not have; a plan that grows memories then fails"),
    )

    #: the versions `membench probe` lists beside `v8`: the system Node of the machines the
    #: project runs on, and the newest major
    PROBE_VERSIONS = ("20", "26")
    #: a V8 flag: `--name` or `--no-name` (no values: a spec value cannot hold `=`)
    FLAG_FORM = (re.compile(r"^--[a-z0-9][a-z0-9_-]*$"), "--name")
    #: the V8 flag that turns a capability on where a version ships it off (`membench probe`
    #: tries it when the plain spec lacks the capability)
    FEATURE_FLAGS: ClassVar[dict[str, str]] = {
        "multi-memory": "--experimental-wasm-multi-memory",
        "memory64": "--experimental-wasm-memory64",
        "relaxed-simd": "--experimental-wasm-relaxed-simd",
        "custom-page-sizes": "--experimental-wasm-custom-page-sizes",
        "tail-call": "--experimental-wasm-return-call",
    }

    @classmethod
    def accepts_version(cls) -> bool:
        return True

    def build(self) -> NodeBuild:
        return resolve(self.version_pin)

    def node(self) -> str | None:
        b = self.build()
        return str(b.binary) if is_installed(b) else None

    def flags(self) -> tuple[str, ...]:
        """The tier's flags, then the spec's own."""
        return (*TIER_FLAGS[self.params["tier"]], *self.spec_flags())

    def prepare(self) -> None:
        """Install the Node build the spec names when missing (npm, project-local)."""
        install(self.build())

    def worker_argv(self) -> list[str]:
        return [self.node() or "node", *self.flags(), str(WORKER_JS)]

    #: counted by callgrind through fsync marks (harness.run.insts)
    INSTS_MARKS = "fsync"

    def insts_argv(self) -> list[str]:
        # --predictable: one thread, deterministic tier-up and GC (counts agree to about a
        # thousand instructions; without it they moved by millions); --predictable-gc-
        # schedule: the heap's growing, idle and memory-reducing collections on a fixed
        # schedule, not one set by timers and measured throughput; --expose-gc: the worker
        # collects before each plan's segments, so the garbage of the plans before it is
        # not collected inside them. The default tier is counted in TurboFan alone: under
        # dynamic tiering whether a hot function was optimized before or during the counted
        # segments changed from run to run (one cell's count by 65% between two runs of
        # the quick suite), and the timed samples, after their warm-up, run its code
        tier = TIER_FLAGS["turbofan" if self.params["tier"] == "default" else self.params["tier"]]
        return [self.node() or "node", "--predictable", "--predictable-gc-schedule",
                "--single-threaded", "--expose-gc", *tier, *self.spec_flags(),
                str(WORKER_JS)]

    def unavailable_reason(self) -> str | None:
        b = self.build()
        node = self.node()
        if node is None:
            return (f"Node {b.package} is not installed (run `make env`, or "
                    f"{b.install_command})" if b.source == "npm"
                    else f"{b.binary} is missing")
        try:
            out = subprocess.run([node, *self.flags(), "-p", "process.versions.node"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {node}: {exc}"
        if out.returncode != 0:
            said = ((out.stderr or out.stdout).strip().splitlines() or [""])[-1]
            return (f"Node {b.package.split('@')[-1] if b.package else 'on PATH'} refused "
                    f"the flags {' '.join(self.flags())}: "
                    f"{said.removeprefix(node + ': ')[:200]}")
        major = int(out.stdout.strip().split(".")[0])
        if major < MIN_NODE:
            return f"Node.js {out.stdout.strip()} is older than {MIN_NODE}"
        return None

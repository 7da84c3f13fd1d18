"""V8 through Node.js: a worker in plain JavaScript (`v8_worker.js`, no npm packages)
speaking the same JSON protocol as `harness.worker`, with the host-function catalogue
implemented in JavaScript (`v8_hostfuncs.js`).

`tier` selects V8's WebAssembly compilers through Node's V8 flags: `default` (Liftoff
baseline first, TurboFan tier-up for hot functions), `liftoff` (baseline compiler only:
`--liftoff --no-wasm-tier-up`) or `turbofan` (optimising compiler only: `--no-liftoff`).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness.plugins.params import Param
from harness.runtimes.base import Runtime

WORKER_JS = Path(__file__).with_name("v8_worker.js")
HOSTFUNCS_JS = Path(__file__).with_name("v8_hostfuncs.js")
TIER_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "liftoff": ("--liftoff", "--no-wasm-tier-up"),
    "turbofan": ("--no-liftoff",),
}
MIN_NODE = 16


class V8Runtime(Runtime):
    NAME = "v8"
    DESCRIPTION = "V8 via Node.js (plain-JavaScript worker)"
    PARAMS = (
        Param("tier", "choice", "default", "V8 wasm compilers: default (Liftoff, then "
              "TurboFan tier-up), liftoff (baseline only), turbofan (optimising only)",
              choices=tuple(TIER_FLAGS)),
    )

    def node(self) -> str | None:
        return shutil.which("node")

    def worker_argv(self) -> list[str]:
        return [self.node() or "node", *TIER_FLAGS[self.params["tier"]], str(WORKER_JS)]

    def unavailable_reason(self) -> str | None:
        node = self.node()
        if node is None:
            return "node (Node.js) is not on PATH"
        try:
            out = subprocess.run([node, *TIER_FLAGS[self.params["tier"]], "-p",
                                  "process.versions.node"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {node}: {exc}"
        if out.returncode != 0:
            return f"{node} refused the flags of tier {self.params['tier']}: " \
                   f"{(out.stderr or out.stdout).strip()[:200]}"
        major = int(out.stdout.strip().split(".")[0])
        if major < MIN_NODE:
            return f"Node.js {out.stdout.strip()} is older than {MIN_NODE}"
        return None

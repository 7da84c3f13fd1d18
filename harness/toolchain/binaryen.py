"""Binaryen, from its npm package (132, `make env` installs it under `.node/tools/binaryen`):
`wasm-merge` joins modules into one (imports resolved against the merged modules'
exports), `wasm-opt --multi-memory-lowering` rewrites a multi-memory module into one
memory. Products are cached by content in `.cache/binaryen`.

Found on Binaryen 132: features must be named (its default is the MVP); `-all` would
turn on the compact import encoding, which wasmtime 50 and Wasmer 7.4 reject. A
memory.copy between memories of two address types (32- and 64-bit) aborts wasm-merge.
The multi-memory lowering works only when no memory but the first is exported.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.core.errors import ToolUnavailable, Unsupported
from harness.toolchain import node_dist

CACHE = CACHE_ROOT / "binaryen"
#: every feature the project's modules may use, named (see the module docstring)
FEATURES = ("--enable-multimemory", "--enable-simd", "--enable-bulk-memory",
            "--enable-sign-ext", "--enable-mutable-globals", "--enable-nontrapping-float-to-int",
            "--enable-multivalue", "--enable-relaxed-simd", "--enable-memory64",
            "--enable-tail-call", "--enable-custom-page-sizes")


def wasm_merge() -> list[str] | str:
    """The command that runs wasm-merge, or why it cannot run (with the install command)."""
    return node_dist.tool_command("binaryen", "wasm-merge")


def merge(parts: Sequence[tuple[str, bytes]], timeout_s: float = 300) -> bytes:
    """wasm-merge of `(name, binary)` parts, the first keeping its export names; cached by
    content in `.cache/binaryen` (a group's linked program is the same in every round: its
    driver holds the data, the settings and the plans)."""
    cmd = wasm_merge()
    if isinstance(cmd, str):
        raise ToolUnavailable(cmd)
    key = content_hash(*cmd, node_dist.tool("binaryen").package, *FEATURES,
                       *(x for name, wasm in parts for x in (name, content_hash(wasm))))
    cached = CACHE / f"merged-{key[:32]}.wasm"
    if cached.exists():
        return cached.read_bytes()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="membench-merge-", dir=CACHE) as tmp:
        argv = [*cmd]
        for i, (name, wasm) in enumerate(parts):
            path = Path(tmp) / f"{i}.wasm"
            path.write_bytes(wasm)
            argv += [str(path), name]
        out = Path(tmp) / "merged.wasm"
        argv += ["-o", str(out), *FEATURES, "--rename-export-conflicts"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s)
        if done.returncode != 0 or not out.exists():
            lines = [ln.strip() for ln in (done.stderr or done.stdout).splitlines()
                     if ln.strip() and len(ln) < 2000]   # not the minified JS it prints
            # an abort's own words, not the Node.js stack trace after them
            said = next((ln for ln in lines if "Assertion failed" in ln or "Fatal" in ln
                         or "error" in ln.lower()), " | ".join(lines[-3:]))[:600]
            raise Unsupported(f"wasm-merge failed (exit {done.returncode}): "
                                     f"{said or 'no message'}")
        merged = out.read_bytes()
        publish(out, cached)
        return merged



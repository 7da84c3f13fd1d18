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
from dataclasses import dataclass
from pathlib import Path

from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.core.errors import ToolUnavailable, Unsupported
from harness.core.recorder import BuildRecorder
from harness.toolchain import node_dist

CACHE = CACHE_ROOT / "binaryen"
#: every feature the project's modules may use, named (see the module docstring)
FEATURES = ("--enable-multimemory", "--enable-simd", "--enable-bulk-memory",
            "--enable-sign-ext", "--enable-mutable-globals", "--enable-nontrapping-float-to-int",
            "--enable-multivalue", "--enable-relaxed-simd", "--enable-memory64",
            "--enable-tail-call", "--enable-custom-page-sizes")


@dataclass(frozen=True)
class BinaryenBuild:
    """How Binaryen made a module: the tool's arguments (inputs named `in<k>.wasm`, the
    output `out.wasm`) and the input modules, in order."""

    tool: str
    args: tuple[str, ...]
    inputs: tuple[bytes, ...]


#: how every module Binaryen made was made, inside `BUILDS.recording()`
BUILDS: BuildRecorder[BinaryenBuild] = BuildRecorder("binaryen_builds")


def _said(text: str) -> str:
    """A Binaryen tool's own words: an abort's message, not the Node.js stack trace and
    minified JS printed after it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and len(ln) < 2000]
    return next((ln for ln in lines if "Assertion failed" in ln or "Fatal" in ln
                 or "error" in ln.lower()), " | ".join(lines[-3:]))[:600] or "no message"


def wasm_merge() -> list[str] | str:
    """The command that runs wasm-merge, or why it cannot run (with the install command)."""
    return node_dist.tool_command("binaryen", "wasm-merge")


def _made(build: BinaryenBuild, cmd: Sequence[str], what: str, timeout_s: float) -> bytes:
    """Run `build` (its inputs written as in<k>.wasm, its output read from out.wasm, in a
    folder of its own: the recorded arguments are the ones run), cached by content."""
    key = content_hash(*cmd, node_dist.tool("binaryen").package, *build.args,
                       *(content_hash(w) for w in build.inputs))
    cached = CACHE / f"{build.tool}-{key[:32]}.wasm"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"membench-{build.tool}-", dir=CACHE) as tmp:
            for k, wasm in enumerate(build.inputs):
                (Path(tmp) / f"in{k}.wasm").write_bytes(wasm)
            done = subprocess.run([*cmd, *build.args], cwd=tmp, capture_output=True,
                                  text=True, timeout=timeout_s)
            out = Path(tmp) / "out.wasm"
            if done.returncode != 0 or not out.exists():
                raise Unsupported(f"{what} failed (exit {done.returncode}): "
                                  f"{_said(done.stderr or done.stdout)}")
            publish(out, cached)
    return BUILDS.record(cached.read_bytes(), build)


def merge(parts: Sequence[tuple[str, bytes]], timeout_s: float = 300) -> bytes:
    """wasm-merge of `(name, binary)` parts, the first keeping its export names; cached by
    content in `.cache/binaryen` (a group's linked program is the same in every round: its
    driver holds the data, the settings and the plans)."""
    cmd = wasm_merge()
    if isinstance(cmd, str):
        raise ToolUnavailable(cmd)
    build = BinaryenBuild("wasm-merge", (*(x for k, (name, _) in enumerate(parts)
                                           for x in (f"in{k}.wasm", name)),
                                         "-o", "out.wasm", *FEATURES,
                                         "--rename-export-conflicts"),
                          tuple(w for _, w in parts))
    return _made(build, cmd, "wasm-merge", timeout_s)


def wasm_opt() -> list[str] | str:
    """The command that runs wasm-opt, or why it cannot run (with the install command)."""
    return node_dist.tool_command("binaryen", "wasm-opt")


def lower_multi_memory(wasm: bytes, timeout_s: float = 300) -> bytes:
    """`wasm` rewritten to one memory by `wasm-opt --multi-memory-lowering` (cached): the
    memories are laid end to end in the first one, in order, each at the sum of the
    initial sizes before it, and every access is rebased; no bounds check keeps an access
    of one inside its own range. Binaryen refuses a module that exports any memory but
    the first."""
    cmd = wasm_opt()
    if isinstance(cmd, str):
        raise ToolUnavailable(cmd)
    flags = ("--enable-multimemory", "--enable-bulk-memory", "--enable-simd",
             "--enable-relaxed-simd", "--enable-sign-ext", "--enable-mutable-globals",
             "--enable-nontrapping-float-to-int", "--multi-memory-lowering")
    build = BinaryenBuild("wasm-opt", (*flags, "in0.wasm", "-o", "out.wasm"), (wasm,))
    return _made(build, cmd, "wasm-opt --multi-memory-lowering", timeout_s)

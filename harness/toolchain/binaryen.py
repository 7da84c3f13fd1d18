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

import contextvars
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass(frozen=True)
class BinaryenBuild:
    """How Binaryen made a module: the tool's arguments (inputs named `in<k>.wasm`, the
    output `out.wasm`) and the input modules, in order."""

    tool: str
    args: tuple[str, ...]
    inputs: tuple[bytes, ...]


_RECORDER: contextvars.ContextVar[dict[bytes, BinaryenBuild] | None] = contextvars.ContextVar(
    "binaryen_builds", default=None)


@contextmanager
def recording_builds() -> Iterator[dict[bytes, BinaryenBuild]]:
    """Within the block, remember how every module Binaryen made was made (by its bytes)."""
    builds: dict[bytes, BinaryenBuild] = {}
    token = _RECORDER.set(builds)
    try:
        yield builds
    finally:
        _RECORDER.reset(token)


def _record(wasm: bytes, build: BinaryenBuild) -> bytes:
    recorder = _RECORDER.get()
    if recorder is not None:
        recorder[wasm] = build
    return wasm


def _said(text: str) -> str:
    """A Binaryen tool's own words: an abort's message, not the Node.js stack trace and
    minified JS printed after it."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and len(ln) < 2000]
    return next((ln for ln in lines if "Assertion failed" in ln or "Fatal" in ln
                 or "error" in ln.lower()), " | ".join(lines[-3:]))[:600] or "no message"


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
    build = BinaryenBuild("wasm-merge", (*(x for k, (name, _) in enumerate(parts)
                                           for x in (f"in{k}.wasm", name)),
                                         "-o", "out.wasm", *FEATURES,
                                         "--rename-export-conflicts"),
                          tuple(w for _, w in parts))
    if cached.exists():
        return _record(cached.read_bytes(), build)
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
            raise Unsupported(f"wasm-merge failed (exit {done.returncode}): "
                              f"{_said(done.stderr or done.stdout)}")
        merged = out.read_bytes()
        publish(out, cached)
        return _record(merged, build)




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
    key = content_hash(*cmd, node_dist.tool("binaryen").package, *flags, wasm)
    cached = CACHE / f"lowered-{key[:32]}.wasm"
    build = BinaryenBuild("wasm-opt", (*flags, "in0.wasm", "-o", "out.wasm"), (wasm,))
    if cached.exists():
        return _record(cached.read_bytes(), build)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="membench-lower-", dir=CACHE) as tmp:
        src, out = Path(tmp) / "in.wasm", Path(tmp) / "out.wasm"
        src.write_bytes(wasm)
        done = subprocess.run([*cmd, *flags, str(src), "-o", str(out)], capture_output=True,
                              text=True, timeout=timeout_s)
        if done.returncode != 0 or not out.exists():
            raise Unsupported(f"wasm-opt --multi-memory-lowering failed (exit "
                              f"{done.returncode}): {_said(done.stderr or done.stdout)}")
        lowered = out.read_bytes()
        publish(out, cached)
        return _record(lowered, build)

"""A plan's instances linked into one module with Binaryen's `wasm-merge`.

The linked program (a WASI command that Wasmer's SDK or wasmtime runs whole) needs every
instance of a plan inside one module. wasm-merge merges modules by name and resolves an
import `(import "M" "x")` against the export `x` of the module merged as `M`; so each
instance's binary gets its imports renamed to what the plan binds them to
(`rename_imports`): a memory `j` of the variant to the driver's export `m<j>`, another
instance's export to that instance's (`i<k>`.export). A module instantiated twice is
merged twice, under two names: each copy keeps its own memories and globals, so the
plan's instances stay apart in state. Each module keeps addressing only its own memories
(merging renumbers memory indices, it adds no access), so isolation between memories is
kept; separate instantiation is not.

Found on Binaryen 132 (npm `binaryen`, `make env` installs it under `.node/tools/binaryen`):
features must be named (its default is the MVP); `-all` would turn on the compact import
encoding, which wasmtime 50 and Wasmer 7.4 reject. WASI uses the memory exported as
`memory`, whichever module calls it: only the driver may do WASI I/O.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.plugins.wasmbin import rename_imports
from harness.runtimes import node_dist
from harness.runtimes.base import RuntimeUnsupported
from harness.standalone.program import DriverProgram, ProgramVariant

DRIVER = "drv"
CACHE = CACHE_ROOT / "linked"
#: every feature the project's modules may use, named (see the module docstring)
FEATURES = ("--enable-multimemory", "--enable-simd", "--enable-bulk-memory",
            "--enable-sign-ext", "--enable-mutable-globals", "--enable-nontrapping-float-to-int",
            "--enable-multivalue", "--enable-relaxed-simd", "--enable-memory64",
            "--enable-tail-call", "--enable-custom-page-sizes")


#: memories a module may define or import where wasmtime validates it (wasmparser's
#: limit: "memories count exceeds limit of 100"); Wasmer 7.4 took a resnet8 group's
#: program of more
WASMTIME_MAX_MEMORIES = 100


def memories_added(variant: ProgramVariant) -> int:
    """The memories `variant` adds to a linked program: those the driver defines for it
    (host memories, buffers) and every memory its instances define (an exported one is
    counted there, once)."""
    return (sum(1 for m in variant.memories if m.kind != "export")
            + sum(len(x.defined) for x in variant.instances))


def program_parts(variants: Sequence[ProgramVariant], limit: int | None) -> list[list[int]]:
    """The variants (indices) split into programs that each stay within `limit` memories
    (memory 0 is the driver's own; None: no limit), in order; a variant too big alone is a
    part alone (`LinkedProgram.prepare` refuses it first)."""
    if limit is None:
        return [list(range(len(variants)))]
    parts: list[list[int]] = []
    used = limit
    for i, v in enumerate(variants):
        n = memories_added(v)
        if used + n > limit:
            parts.append([])
            used = 1
        parts[-1].append(i)
        used += n
    return parts


def instance_name(k: int) -> str:
    return f"i{k}"


def memory_export(j: int) -> str:
    return f"m{j}"


def wasm_merge() -> list[str] | str:
    """The command that runs wasm-merge, or why it cannot run (with the install command)."""
    return node_dist.tool_command("binaryen", "wasm-merge")


def instance_binary(variant: ProgramVariant, k: int, wasm: bytes, prefix: str = "") -> bytes:
    """Instance `k`'s module with its imports naming what the plan binds them to (`prefix`
    tells the variants of one program apart: `v0i3`, the driver's `v0m2`)."""
    bound = {(imp.module, imp.field): imp for imp in variant.instances[k].imports}

    def rename(module: str, field: str, kind: str) -> tuple[str, str]:
        imp = bound.get((module, field))
        if imp is None:
            raise RuntimeUnsupported(f"instance {variant.instances[k].name}: import "
                                     f"{module}.{field} is bound by no plan import")
        if imp.kind == "memory":
            return DRIVER, prefix + memory_export(imp.target)
        if imp.kind == "export":
            return prefix + instance_name(imp.target), imp.export
        raise RuntimeUnsupported("a linked program has no embedding to serve host functions "
                                 f"({module}.{field}): host-call runs there only with its "
                                 "wasm host (host=wasm)")
    return rename_imports(wasm, rename)


def merge(parts: Sequence[tuple[str, bytes]], timeout_s: float = 300) -> bytes:
    """wasm-merge of `(name, binary)` parts, the first keeping its export names; cached by
    content in `.cache/linked` (a group's program is the same in every round: the driver
    holds the data, the settings and the plans)."""
    cmd = wasm_merge()
    if isinstance(cmd, str):
        raise RuntimeUnsupported(cmd)
    key = content_hash(*cmd, node_dist.tool("binaryen").package, *FEATURES,
                       *(x for name, wasm in parts for x in (name, content_hash(wasm))))
    cached = CACHE / f"{key[:32]}.wasm"
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
            raise RuntimeUnsupported(f"wasm-merge failed (exit {done.returncode}): "
                                     f"{said or 'no message'}")
        merged = out.read_bytes()
        publish(out, cached)
        return merged


def variant_prefix(vi: int) -> str:
    """What tells variant `vi`'s instances and memories apart in one program (`v0i3`,
    the driver's `v0m2`)."""
    return f"v{vi}"


def link_program(program: DriverProgram, driver: bytes) -> bytes:
    """The driver (merged first, so its exports keep their names) and every instance of
    every variant, each under its variant's prefix."""
    parts = [(DRIVER, driver)]
    for vi, v in enumerate(program.variants):
        prefix = variant_prefix(vi)
        parts += [(prefix + instance_name(k),
                   instance_binary(v, k, program.modules[x.module], prefix))
                  for k, x in enumerate(v.instances)]
    return merge(parts)

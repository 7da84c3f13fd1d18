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

from collections.abc import Sequence

from harness.core.errors import Unsupported
from harness.plugins.wasmbin import rename_imports
from harness.runtimes.base import RuntimeUnsupported
from harness.standalone.program import DriverProgram, ProgramVariant
from harness.toolchain import binaryen

DRIVER = "drv"
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


def merge(parts: Sequence[tuple[str, bytes]]) -> bytes:
    """wasm-merge of `(name, binary)` parts (`harness.toolchain.binaryen.merge`), its
    failures as the runtime's `unsupported`."""
    try:
        return binaryen.merge(parts)
    except Unsupported as exc:
        raise RuntimeUnsupported(str(exc)) from None


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

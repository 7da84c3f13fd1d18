"""C kernels built by a real toolchain: clang 19 and wasm-ld for wasm32, one module per
(kernel, shape, memory form), cached by content in `.cache/clang`.

LLVM compiles C for one linear memory; a strategy asks for that memory in one of two forms
(`lowering.MemoryForm`), and each is a link form of the same C:

* `define` (`per-module`): the module defines its memory, `--initial-memory` sized as the
  strategy sized it, and exports it under the strategy's name;
* `import` (`shared`, `per-device`): `--import-memory`, renamed afterwards to the import
  the strategy binds (`env.heap`).

Either way the module keeps its C stack at the bottom of that memory (`--stack-first`,
STACK_BYTES): the agreed split is that the strategy places tensors from STACK_BYTES up
(`Kernel.reserved_bytes`). A kernel must not have static data: modules importing one
memory would each write theirs at the same address. A build with a data segment is
refused. There is no libc (`-nostdlib`): a kernel whose loops clang would turn into
`memset` or `memcpy` calls fails to link, saying so.

Shapes are `-D` constants, as the code generator bakes them into the WAT. Every build
remembers its command (`recording_builds`), so `membench export` can give the exact
commands that rebuild a module.
"""

from __future__ import annotations

import contextvars
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.codegen.lowering import MemoryForm
from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.core.errors import ToolUnavailable, Unsupported
from harness.plugins.wasmbin import has_data, rename_imports

CACHE = CACHE_ROOT / "clang"
#: the C stack at the bottom of the memory; tensors go above it (`reserved_bytes`)
STACK_BYTES = 16384
PAGE = 65536
#: Debian's versioned packages (the unversioned `clang` is 14, which lacks these flags)
CLANG_DIRS = (Path("/usr/lib/llvm-19/bin"),)
INSTALL = "apt-get install clang-19 lld-19 (make env does, as root)"
#: every build, whatever the form
COMMON = ("--target=wasm32", "-O3", "-nostdlib", "-ffreestanding",
          "-Wl,--no-entry", "-Wl,--export=run", "-Wl,--stack-first",
          f"-Wl,-z,stack-size={STACK_BYTES}")
ISA_FLAGS = {"simd": ("-msimd128",), "scalar": ("-mno-simd128",)}


def find_clang() -> Path | str:
    """clang 19 with its wasm-ld beside it, or why not (with the install command)."""
    for d in CLANG_DIRS:
        if (d / "clang").exists() and (d / "wasm-ld").exists():
            return d / "clang"
    found = shutil.which("clang-19")
    if found and shutil.which("wasm-ld-19"):
        return Path(found)
    return f"clang-19 and lld-19 are not installed ({INSTALL})"


@dataclass(frozen=True)
class ClangBuild:
    """A module clang built: its bytes, the C source it came from and the command."""

    wasm: bytes
    source: Path
    command: tuple[str, ...]     # the clang command line, the source and output by name
    renamed: tuple[tuple[str, str], ...] = ()   # import renames applied afterwards


_RECORDER: contextvars.ContextVar[dict[bytes, ClangBuild] | None] = contextvars.ContextVar(
    "clang_builds", default=None)


@contextmanager
def recording_builds() -> Iterator[dict[bytes, ClangBuild]]:
    """Within the block, remember how every clang-built module was made (by its bytes)."""
    builds: dict[bytes, ClangBuild] = {}
    token = _RECORDER.set(builds)
    try:
        yield builds
    finally:
        _RECORDER.reset(token)


def form_flags(form: MemoryForm) -> tuple[str, ...]:
    """The link flags of a memory form (see the module docstring)."""
    if form.kind == "import":
        return ("-Wl,--import-memory", f"-Wl,--initial-memory={PAGE}")
    if form.kind == "define":
        flags = (f"-Wl,--initial-memory={max(1, form.pages) * PAGE}",)
        return flags if form.export == "memory" else (*flags, f"-Wl,--export-memory={form.export}")
    raise Unsupported(f"no clang link form for a memory of kind {form.kind!r}")


def build_c_kernel(source: Path, defines: Mapping[str, int | float], isa: str,
                   form: MemoryForm, include: Sequence[Path] = ()) -> ClangBuild:
    """`source` compiled and linked for `form` (cached by everything that goes into it)."""
    clang = find_clang()
    if isinstance(clang, str):
        raise ToolUnavailable(clang)
    if isa not in ISA_FLAGS:
        raise Unsupported(f"clang kernels are built for isa {' or '.join(ISA_FLAGS)}, not "
                          f"{isa!r}")
    flags = (*COMMON, *ISA_FLAGS[isa], *(f"-D{k}={v}" for k, v in sorted(defines.items())),
             *form_flags(form))
    command = ("clang-19", *flags, *(f"-I{d.name}" for d in include), source.name,
               "-o", f"{source.stem}.wasm")
    headers = [h for d in include for h in sorted(d.glob("*.h"))]
    key = content_hash(str(clang), *flags, source.read_bytes(),
                       *(h.read_bytes() for h in headers))
    cached = CACHE / f"{source.stem}-{key[:24]}.wasm"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            out = Path(tmp) / "out.wasm"
            argv = [str(clang), *flags, *(f"-I{d}" for d in include), str(source), "-o",
                    str(out)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
            if done.returncode != 0 or not out.exists():
                said = " | ".join(done.stderr.strip().splitlines()[:6])[:600]
                raise Unsupported(f"clang could not build {source.name} (exit "
                                  f"{done.returncode}): {said or 'no message'}")
            if has_data(out.read_bytes()):
                raise Unsupported(f"{source.name} has static data: modules sharing a memory "
                                  "would each write it at the same address")
            publish(out, cached)
    wasm = cached.read_bytes()
    renamed: tuple[tuple[str, str], ...] = ()
    if form.kind == "import":
        wasm = rename_imports(wasm, lambda m, f, kind: (form.module, form.field)
                              if (m, f, kind) == ("env", "memory", "memory") else (m, f))
        renamed = (("env.memory", f"{form.module}.{form.field}"),)
    build = ClangBuild(wasm, source, command, renamed)
    recorder = _RECORDER.get()
    if recorder is not None:
        recorder[wasm] = build
    return build

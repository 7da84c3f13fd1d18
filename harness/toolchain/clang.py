"""C kernels built by a real toolchain: clang 19 and wasm-ld for wasm32, one module per
(kernel, shape, memory form), cached by content in `.cache/clang`.

LLVM compiles C for one linear memory; a strategy asks for that memory in one of two forms
(`lowering.MemoryForm`), and each is a link form of the same C:

* `define` (`per-module`): the module defines its memory, `--initial-memory` sized as the
  strategy sized it, and exports it under the strategy's name;
* `import` (`shared`, `per-device`): `--import-memory=module,field`, the import the
  strategy binds (`env.heap`).

Either way the module keeps its C stack at the bottom of that memory (`--stack-first`,
STACK_BYTES): the agreed split is that the strategy places tensors from STACK_BYTES up
(`Kernel.reserved_bytes`). A kernel must not have static data: modules importing one
memory would each write theirs at the same address. A build with a data segment is
refused. There is no libc (`-nostdlib`): a kernel whose loops clang would turn into
`memset` or `memcpy` calls fails to link, saying so.

Shapes are `-D` constants, as the code generator bakes them into the WAT. A module is two
commands, `clang-19 -c` and `wasm-ld-19` (see LDFLAGS for why not one), and every build
remembers them (`BUILDS`), so `membench export` gives the exact commands that
rebuild a module, byte for byte (tests/test_export.py rebuilds them).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.codegen.lowering import MemoryForm
from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.core.errors import ToolUnavailable, Unsupported
from harness.core.recorder import BuildRecorder
from harness.plugins.wasmbin import has_data

CACHE = CACHE_ROOT / "clang"
#: the C stack at the bottom of the memory; tensors go above it (`reserved_bytes`)
STACK_BYTES = 16384
PAGE = 65536
#: Debian's versioned packages (the unversioned `clang` is 14, which lacks these flags)
CLANG_DIRS = (Path("/usr/lib/llvm-19/bin"),)
INSTALL = "apt-get install clang-19 lld-19 (make env does, as root)"
#: compiling, whatever the form
CFLAGS = ("--target=wasm32", "-O3", "-nostdlib", "-ffreestanding")
ISA_FLAGS = {"simd": ("-msimd128",), "scalar": ("-mno-simd128",)}
#: linking, whatever the form. wasm-ld is run itself, not through the clang driver: the
#: driver runs Binaryen's wasm-opt after linking when one is on PATH, so the same command
#: would give other bytes on another machine. No name or producers sections (--strip-all):
#: wasm-ld names the module after its output file
LDFLAGS = ("--no-entry", "--export=run", "--stack-first", f"-z stack-size={STACK_BYTES}",
           "--strip-all")


@dataclass(frozen=True)
class Toolchain:
    clang: Path
    wasm_ld: Path


def find_clang() -> Toolchain | str:
    """clang 19 and its wasm-ld, or why not (with the install command)."""
    for d in CLANG_DIRS:
        if (d / "clang").exists() and (d / "wasm-ld").exists():
            return Toolchain(d / "clang", d / "wasm-ld")
    clang, ld = shutil.which("clang-19"), shutil.which("wasm-ld-19")
    if clang and ld:
        return Toolchain(Path(clang), Path(ld))
    return f"clang-19 and lld-19 are not installed ({INSTALL})"


@dataclass(frozen=True)
class ClangBuild:
    """A module clang built: its bytes, the C source it came from and how."""

    wasm: bytes
    source: Path
    cflags: tuple[str, ...]      # every compile flag but the include folders
    ldflags: tuple[str, ...]
    include: tuple[Path, ...]

    def commands(self, source: str, include: Sequence[str], out: str) -> list[list[str]]:
        """The two commands that rebuild the module from `source` (with the headers in
        `include`) into `out`: Debian's clang-19, then its wasm-ld-19."""
        obj = out.removesuffix(".wasm") + ".o"
        return [["clang-19", *self.cflags, *(f"-I{d}" for d in include), "-c", source,
                 "-o", obj],
                ["wasm-ld-19", *(x for f in self.ldflags for x in f.split(" ")), obj,
                 "-o", out]]


#: how every C kernel was built, inside `BUILDS.recording()`
BUILDS: BuildRecorder[ClangBuild] = BuildRecorder("clang_builds")


def form_flags(form: MemoryForm) -> tuple[str, ...]:
    """The link flags of a memory form (see the module docstring)."""
    if form.kind == "import":
        return (f"--import-memory={form.module},{form.field}", f"--initial-memory={PAGE}")
    if form.kind == "define":
        flags = (f"--initial-memory={max(1, form.pages) * PAGE}",)
        return flags if form.export == "memory" else (*flags, f"--export-memory={form.export}")
    raise Unsupported(f"no clang link form for a memory of kind {form.kind!r}")


def _run(argv: Sequence[str], what: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        said = " | ".join(done.stderr.strip().splitlines()[:6])[:600]
        raise Unsupported(f"{what} failed (exit {done.returncode}): {said or 'no message'}")


def build_c_kernel(source: Path, defines: Mapping[str, int | float], isa: str,
                   form: MemoryForm, include: Sequence[Path] = ()) -> ClangBuild:
    """`source` compiled and linked for `form` (cached by everything that goes into it)."""
    tc = find_clang()
    if isinstance(tc, str):
        raise ToolUnavailable(tc)
    if isa not in ISA_FLAGS:
        raise Unsupported(f"clang kernels are built for isa {' or '.join(ISA_FLAGS)}, not "
                          f"{isa!r}")
    cflags = (*CFLAGS, *ISA_FLAGS[isa], *(f"-D{k}={v}" for k, v in sorted(defines.items())))
    ldflags = (*LDFLAGS, *form_flags(form))
    headers = [h for d in include for h in sorted(d.glob("*.h"))]
    key = content_hash(str(tc.clang), str(tc.wasm_ld), *cflags, "--", *ldflags,
                       source.read_bytes(), *(h.read_bytes() for h in headers))
    cached = CACHE / f"{source.stem}-{key[:24]}.wasm"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            obj, out = Path(tmp) / "kernel.o", Path(tmp) / "kernel.wasm"
            _run([str(tc.clang), *cflags, *(f"-I{d}" for d in include), "-c", str(source),
                  "-o", str(obj)], f"clang of {source.name}")
            _run([str(tc.wasm_ld), *(x for f in ldflags for x in f.split(" ")), str(obj),
                  "-o", str(out)], f"wasm-ld of {source.name}")
            if has_data(out.read_bytes()):
                raise Unsupported(f"{source.name} has static data: modules sharing a memory "
                                  "would each write it at the same address")
            publish(out, cached)
    wasm = cached.read_bytes()
    build = ClangBuild(wasm, source, cflags, ldflags, tuple(include))
    BUILDS.record(wasm, build)
    return build

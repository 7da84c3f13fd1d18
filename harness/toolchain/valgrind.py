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


def command(out_prefix: Path, marks: str = "client-request") -> list[str]:
    """valgrind's part of a counted worker's command line (dumps to
    `out_prefix`.<pid>.<n>-<thread>); `marks`: how the worker ends its segments (client
    requests, or fsyncs). One file per thread: only the main thread's instructions are
    read, because an engine's helper threads (a compiler's thread pool spinning before it
    sleeps) run as much as the scheduler lets them, which moved a count with the machine's
    load by up to 0.6%."""
    extra = FSYNC_OPTIONS if marks == "fsync" else ()
    return [valgrind(), *OPTIONS, "--separate-threads=yes", *extra,
            f"--callgrind-out-file={out_prefix}.%p"]


def read_ordered_dumps(folder: Path, prefix: str) -> list[int]:
    """The main thread's instructions in each numbered dump (`--dump-before`), in order: the
    instructions since the dump before it."""
    numbered = []
    for f in folder.glob(f"{prefix}.*-01"):
        m = re.search(r"\.(\d+)\.(\d+)-01$", f.name)
        total = re.search(r"^summary: (\d+)", f.read_text(errors="replace"), re.M)
        if m and total:
            numbered.append((int(m.group(2)), int(total.group(1))))
    return [n for _, n in sorted(numbered)]


def read_dumps(folder: Path, prefix: str) -> dict[str, int]:
    """Label -> the main thread's instructions in every client-request dump callgrind
    wrote in `folder`."""
    out: dict[str, int] = {}
    for f in sorted(folder.glob(f"{prefix}.*-01")):
        text = f.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: Client Request: (.*)$", text, re.M)
        total = re.search(r"^summary: (\d+)", text, re.M)
        if label and total:
            out[label.group(1).strip()] = int(total.group(1))
    return out

"""Starting a worker process and turning however it ended into an outcome.

The worker runs in its own session (process group) so a timeout kills it and anything it
started. Exit by signal (segfault, OOM kill) or without a response is `crashed`, with the
signal name or the tail of stderr; over the time limit is `timeout`.

An optional memory limit caps the worker's data segment (`RLIMIT_DATA`: heap, anonymous
writable mappings, committed wasm linear memory) so a plan that needs too much memory
fails inside its own worker instead of pushing the machine into swap or the kernel's OOM
killer. Address-space reservations (wasmtime's guard regions) are not counted, so the
limit does not change how a runtime lays out its memories. A worker that fails by
running out of memory under the limit ends as `oom`.

Workers start through a tiny trampoline (`python -I -S -c _START`) that applies the limit
and asks the kernel to kill the worker if the harness dies (`PR_SET_PDEATHSIG`, Linux),
then execs the worker: a `kill -9` of the harness leaves no worker running on. Doing this
in the child after fork (`preexec_fn`) is unsafe in a process with threads (NumPy's
BLAS pool), hence the exec.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.fmt import fmt_bytes
from harness.core.protocol import PROTOCOL, REQUEST, read_response
from harness.runtimes.base import Runtime

#: how allocation failures read in a worker's message or stderr (Python, NumPy, Rust
#: runtimes, wasmtime, OpenBLAS, V8)
_OOM_TEXT = re.compile(r"MemoryError|Unable to allocate|memory allocation of \d+ bytes failed"
                       r"|failed to grow memory|Cannot allocate memory|out of memory"
                       r"|Memory allocation still failed|allocation failed", re.IGNORECASE)


@dataclass(frozen=True)
class WorkerOutcome:
    status: str                      # ok / trapped / crashed / timeout (from the worker's view)
    message: str
    response: dict[str, Any] | None
    wall_s: float


def _tail(path: Path, limit: int = 600) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-3:])[-limit:]


#: argv: harness pid, data limit in bytes (0: none), CPUs to pin to (comma-separated, empty:
#: none), worker command... Pinning here, before the exec, holds for every thread the engine
#: starts, also in a worker that cannot pin itself (a JS shell); the workers that can pin
#: themselves to the same CPUs again and report the affinity in force.
_START = """
import os, signal, sys
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with the harness
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit("harness exited before the worker started")
if int(sys.argv[2]):
    import resource
    resource.setrlimit(resource.RLIMIT_DATA, (int(sys.argv[2]),) * 2)
if sys.argv[3]:
    os.sched_setaffinity(0, {int(c) for c in sys.argv[3].split(",")})
os.execvp(sys.argv[4], sys.argv[4:])
"""


def _start_argv(argv: list[str], memory_limit: int | None,
                pin: Sequence[int] = ()) -> list[str]:
    return [sys.executable, "-I", "-S", "-c", _START, str(os.getpid()),
            str(memory_limit or 0), ",".join(str(int(c)) for c in pin), *argv]


def pinned(request: dict[str, Any], pin: Sequence[int]) -> dict[str, Any]:
    """`request` with the CPUs its worker pins itself to (`--pin`); unchanged without."""
    return {**request, "pin": list(pin)} if pin else request


def run_worker(runtime: Runtime, request: dict[str, Any], workdir: Path,
               timeout_s: float, env: dict[str, str] | None = None,
               memory_limit: int | None = None, pass_fds: tuple[int, ...] = ()
               ) -> WorkerOutcome:
    """Write `request` into `workdir`, run the runtime's worker on it, collect the outcome.

    `memory_limit` (bytes) caps the worker's data segment; an allocation failure under it
    makes the outcome `oom`. `pass_fds` are inherited by the worker."""
    return finish_worker(start_worker(runtime, request, workdir, env, memory_limit, pass_fds),
                         timeout_s)


@dataclass
class StartedWorker:
    """A worker process that is running (or could not start: `failed`)."""

    workdir: Path
    proc: subprocess.Popen[bytes] | None
    t0: float
    memory_limit: int | None = None
    failed: WorkerOutcome | None = None


def start_worker(runtime: Runtime, request: dict[str, Any], workdir: Path,
                 env: dict[str, str] | None = None, memory_limit: int | None = None,
                 pass_fds: tuple[int, ...] = ()) -> StartedWorker:
    """Write the request and start the worker without waiting for it; `pass_fds` are
    inherited by the worker (lockstep pipes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    req_path = workdir / REQUEST
    req_path.write_text(json.dumps(request), encoding="utf-8")
    argv = [*runtime.worker_argv(), str(req_path)]
    t0 = time.perf_counter()
    if shutil.which(argv[0]) is None:
        why = "not executable" if Path(argv[0]).exists() else "No such file or directory"
        return StartedWorker(workdir, None, t0, memory_limit, WorkerOutcome(
            "crashed", f"cannot start worker {argv[0]}: {why}", None, 0.0))
    with open(workdir / "worker.stdout", "wb") as out, \
            open(workdir / "worker.stderr", "wb") as err:
        try:
            proc = subprocess.Popen(_start_argv(argv, memory_limit, request.get("pin") or ()),
                                    stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=err, start_new_session=True, env=env,
                                    pass_fds=pass_fds)
        except OSError as exc:
            return StartedWorker(workdir, None, t0, memory_limit, WorkerOutcome(
                "crashed", f"cannot start worker {argv[0]}: {exc.strerror}", None, 0.0))
    return StartedWorker(workdir, proc, t0, memory_limit)


def finish_worker(w: StartedWorker, timeout_s: float) -> WorkerOutcome:
    """Wait (at most `timeout_s`) for a started worker and turn its end into an outcome."""
    outcome = _finish(w, timeout_s)
    if w.memory_limit is not None and outcome.status in ("crashed", "trapped") and \
            _OOM_TEXT.search(outcome.message + " " + _tail(w.workdir / "worker.stderr")):
        return WorkerOutcome("oom", f"out of memory under the worker memory limit of "
                             f"{fmt_bytes(w.memory_limit)}: {outcome.message}",
                             outcome.response, outcome.wall_s)
    return outcome


def stop_worker(w: StartedWorker) -> None:
    """Kill a started worker and everything it started (Ctrl-C, a failed partner)."""
    if w.proc is not None and w.proc.returncode is None:
        _kill_group(w.proc)


def _finish(w: StartedWorker, timeout_s: float) -> WorkerOutcome:
    if w.failed is not None or w.proc is None:
        return w.failed or WorkerOutcome("crashed", "worker did not start", None, 0.0)
    proc, workdir, t0 = w.proc, w.workdir, w.t0
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return WorkerOutcome("timeout", f"no result after {timeout_s:g} s; worker killed",
                             None, time.perf_counter() - t0)
    except BaseException:  # Ctrl-C: never leave a worker behind
        _kill_group(proc)
        raise
    wall = time.perf_counter() - t0
    stderr = workdir / "worker.stderr"
    if code < 0:
        name = signal.Signals(-code).name
        why = {"SIGSEGV": "segmentation fault", "SIGKILL": "killed (out of memory?)",
               "SIGABRT": "aborted", "SIGBUS": "bus error"}.get(name, "terminated")
        tail = _tail(stderr)
        return WorkerOutcome("crashed", f"worker died with {name} ({why})"
                             + (f": {tail}" if tail else ""), None, wall)
    try:
        resp = read_response(workdir)
    except (OSError, json.JSONDecodeError) as exc:
        return WorkerOutcome("crashed", f"unreadable worker response: {exc}", None, wall)
    if resp is None:
        tail = _tail(stderr)
        return WorkerOutcome("crashed", f"worker exited with status {code} and no result"
                             + (f": {tail}" if tail else ""), None, wall)
    if resp.get("protocol") != PROTOCOL:
        return WorkerOutcome("crashed", f"worker speaks protocol {resp.get('protocol')!r}, "
                             f"expected {PROTOCOL}", None, wall)
    return WorkerOutcome(str(resp.get("status", "crashed")), str(resp.get("message", "")),
                         resp, wall)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

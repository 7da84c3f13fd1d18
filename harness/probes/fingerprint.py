"""Machine and version fingerprint for `run.json`.

Built from a fixed allow-list of fields: nothing from the environment (no variables, no
user names, no paths under $HOME) is copied wholesale, so results carry no secrets.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.core.paths import REPO_ROOT


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_state(repo: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True,
                                 text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


def _tool_version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def node_versions() -> dict[str, str | None]:
    """Node.js and its V8, when a `node` is on PATH (the V8 runtime's worker uses it)."""
    import shutil

    if shutil.which("node") is None:
        return {"node": None, "v8": None}
    return {"node": _tool_version(["node", "--version"]),
            "v8": _tool_version(["node", "-p", "process.versions.v8"])}


def package_versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for name in ("wasmtime", "numpy", "scipy", "psutil", "pytest-benchmark"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def busy_processes(interval_s: float = 0.3, threshold: float = 10.0) -> list[dict[str, Any]]:
    """Other processes using more than `threshold` % of a CPU over `interval_s`.

    Only the process name, pid and CPU share are kept (never command lines or users).
    This process and its descendants are excluded.
    """
    import time

    import psutil

    me = psutil.Process()
    mine = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = []
    for p in psutil.process_iter(["name"]):
        if p.pid in mine:
            continue
        try:
            p.cpu_percent(None)
            procs.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(interval_s)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if pct > threshold:
            busy.append({"pid": p.pid, "name": p.info.get("name") or "?", "cpu_percent": pct})
    return sorted(busy, key=lambda d: -d["cpu_percent"])


def noise_warnings(fp: dict[str, Any], pinned: bool) -> list[str]:
    """Conditions that add noise to timings, in words (also shown on the terminal)."""
    out = []
    cpus = fp.get("cpu_count") or 1
    load = fp.get("loadavg_1m") or 0.0
    if load > 0.25 * cpus:
        out.append(f"load average {load:.2f} on {cpus} CPUs: other work competes for the CPUs")
    for p in fp.get("busy_processes", [])[:5]:
        out.append(f"another busy process: {p['name']} (pid {p['pid']}) at "
                   f"{p['cpu_percent']:.0f}% CPU")
    gov = fp.get("governor")
    if gov and gov != "performance":
        out.append(f"CPU frequency governor is {gov!r}, not 'performance': clock speed may vary")
    if not pinned:
        out.append("workers are not pinned to a CPU (use --pin CPU): the scheduler may "
                   "migrate them")
    return out


def fingerprint(repo: Path | None = None, probe_noise: bool = True) -> dict[str, Any]:
    import numpy

    try:
        import psutil

        freq = psutil.cpu_freq()
        mem_total = psutil.virtual_memory().total
        load = os.getloadavg()
    except Exception:  # pragma: no cover - psutil is a dependency
        freq, mem_total, load = None, None, (0.0, 0.0, 0.0)
    fp: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_freq_mhz": round(freq.current) if freq else None,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "mem_total": mem_total,
        "machine": platform.machine(),
        "kernel": platform.release(),
        "os": platform.system(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "loadavg_1m": round(load[0], 2),
        "loadavg_5m": round(load[1], 2),
        "packages": package_versions(),
        **node_versions(),
    }
    if probe_noise:
        try:
            fp["busy_processes"] = busy_processes()
        except Exception:  # pragma: no cover - psutil denied everything
            fp["busy_processes"] = []
    fp["git"] = git_state(repo or REPO_ROOT)
    fp["machine_id"] = machine_key(fp)
    return fp


def machine_key(fp: dict[str, Any]) -> str:
    """A short stable key for 'the same kind of machine' (results are keyed by it)."""
    import hashlib

    basis = "|".join(str(fp.get(k)) for k in ("cpu_model", "cpu_count", "machine", "os"))
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def command_line() -> list[str]:
    return [os.path.basename(sys.argv[0]), *sys.argv[1:]]

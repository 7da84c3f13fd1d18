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


def fingerprint(repo: Path | None = None) -> dict[str, Any]:
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
    }
    fp["git"] = git_state(repo or Path(__file__).resolve().parent.parent)
    fp["machine_id"] = machine_key(fp)
    return fp


def machine_key(fp: dict[str, Any]) -> str:
    """A short stable key for 'the same kind of machine' (results are keyed by it)."""
    import hashlib

    basis = "|".join(str(fp.get(k)) for k in ("cpu_model", "cpu_count", "machine", "os"))
    return hashlib.sha256(basis.encode()).hexdigest()[:12]


def command_line() -> list[str]:
    return [os.path.basename(sys.argv[0]), *sys.argv[1:]]

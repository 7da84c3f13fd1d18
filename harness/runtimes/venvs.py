"""Worker environments for pinned runtime versions (`wasmtime@49.0.0`).

An A/B comparison across runtime versions needs both versions importable at once, which
one environment cannot do. Each pinned version gets its own virtual environment under
`.venvs/<package>-<version>/` (created on first use, then cached), holding this project
(installed without its dependencies, so the pin is not overridden) plus the few packages a
worker imports and the pinned runtime package.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.core.errors import MembenchError
from harness.core.paths import REPO_ROOT

WORKER_DEPS = ("numpy", "psutil", "tomli>=2.0; python_version < '3.11'")
READY = ".membench-ready"


def venv_dir(package: str, version: str, root: Path = REPO_ROOT) -> Path:
    return root / ".venvs" / f"{package}-{version}"


def venv_python(env: Path) -> Path:
    return env / "bin" / "python"


def is_ready(package: str, version: str, root: Path = REPO_ROOT) -> bool:
    return (venv_dir(package, version, root) / READY).exists()


def ensure_worker_env(package: str, version: str, root: Path = REPO_ROOT,
                      python: str = sys.executable) -> Path:
    """The python of a cached environment with `package==version`; created when missing.

    Raises MembenchError with pip's last words when the version cannot be installed.
    """
    env = venv_dir(package, version, root)
    if (env / READY).exists():
        return venv_python(env)
    env.parent.mkdir(parents=True, exist_ok=True)
    steps = [
        [python, "-m", "venv", "--clear", str(env)],
        [str(venv_python(env)), "-m", "pip", "install", "--quiet", *WORKER_DEPS,
         f"{package}=={version}"],
        [str(venv_python(env)), "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(root)],
    ]
    for cmd in steps:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MembenchError(f"cannot create the {package}=={version} worker environment: "
                                f"{exc}") from None
        if out.returncode != 0:
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-2:])
            raise MembenchError(f"cannot create the {package}=={version} worker environment "
                                f"in {env}: {tail}")
    (env / READY).write_text(f"{package}=={version}\n", encoding="utf-8")
    return venv_python(env)

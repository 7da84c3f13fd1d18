"""The `.venv-wasmer` worker environment: wasmer-python 1.1.0 ships wheels only up to
CPython 3.10, so its worker runs in an environment of its own, built from a Python 3.10
interpreter found on PATH, through pyenv, or named by `MEMBENCH_PY310`.

`python -m harness.runtimes.wasmer_env` (run by `make env`) creates it when missing; when
no Python 3.10 exists it says so and exits 0, and the wasmer runtime reports itself
`unavailable` with the same reason while everything else runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.runtimes.venvs import READY, REPO_ROOT, WORKER_DEPS, venv_python

ENV_DIR = ".venv-wasmer"
PACKAGES = ("wasmer==1.1.0", "wasmer-compiler-cranelift==1.1.0",
            "wasmer-compiler-singlepass==1.1.0", "wasmer-compiler-llvm==1.1.0")
WANT = (3, 10)


def env_dir(root: Path = REPO_ROOT) -> Path:
    return root / ENV_DIR


def _is_py310(exe: str) -> bool:
    try:
        out = subprocess.run([exe, "-c", "import sys; print(sys.version_info[:2] == (3, 10))"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "True"


def find_python310() -> tuple[str | None, str]:
    """(interpreter, how it was found) or (None, where it was looked for)."""
    named = os.environ.get("MEMBENCH_PY310")
    if named:
        return (named, "MEMBENCH_PY310") if _is_py310(named) else \
            (None, f"MEMBENCH_PY310={named} is not a Python 3.10 interpreter")
    if sys.version_info[:2] == WANT:
        return sys.executable, "this interpreter"
    exe = shutil.which("python3.10")
    if exe and _is_py310(exe):
        return exe, "PATH"
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30)
        versions = Path(out.stdout.strip()) / "versions"
        for d in sorted(versions.glob("3.10*"), reverse=True) if versions.is_dir() else ():
            cand = d / "bin" / "python3.10"
            if cand.exists() and _is_py310(str(cand)):
                return str(cand), "pyenv"
    return None, ("no Python 3.10 found (looked at MEMBENCH_PY310, python3.10 on PATH and "
                  "pyenv versions); wasmer-python 1.1.0 has wheels only up to CPython 3.10")


def missing_reason(root: Path = REPO_ROOT) -> str | None:
    """Why the environment is not usable (None when it is)."""
    if (env_dir(root) / READY).exists():
        return None
    py, why = find_python310()
    if py is None:
        return why
    return f"{ENV_DIR} has not been created (run `make env`; a Python 3.10 was found via {why})"


def ensure(root: Path = REPO_ROOT) -> tuple[bool, str]:
    """Create the environment when missing; (usable, message)."""
    env = env_dir(root)
    ready = env / READY
    if ready.exists():
        if ready.stat().st_mtime >= (root / "pyproject.toml").stat().st_mtime:
            return True, f"{ENV_DIR} is ready"
        # the project changed (e.g. entry points): reinstall it, keep the wheels
        return _run([[str(venv_python(env)), "-m", "pip", "install", "--quiet", "--no-deps",
                      "-e", str(root)]], ready, f"{ENV_DIR} updated")
    py, why = find_python310()
    if py is None:
        return False, why
    py_env = str(venv_python(env))
    steps = [
        [py, "-m", "venv", "--clear", str(env)],
        [py_env, "-m", "pip", "install", "--quiet", *WORKER_DEPS, *PACKAGES],
        [py_env, "-m", "pip", "install", "--quiet", "--no-deps", "-e", str(root)],
    ]
    return _run(steps, env / READY, f"{ENV_DIR} created from {py} (found via {why})")


def _run(steps: list[list[str]], ready: Path, done: str) -> tuple[bool, str]:
    for cmd in steps:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, f"cannot create {ENV_DIR}: {exc}"
        if out.returncode != 0:
            tail = " | ".join((out.stderr or out.stdout).strip().splitlines()[-2:])
            return False, f"cannot create {ENV_DIR} ({cmd[0]}): {tail}"
    ready.write_text(f"{' '.join(PACKAGES)}\n", encoding="utf-8")
    return True, done


def main() -> int:
    ok, message = ensure()
    print(f"membench: {message}" + ("" if ok else "; runtime wasmer will be unavailable"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

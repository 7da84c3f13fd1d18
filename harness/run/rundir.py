"""Where a run's files go: a fresh directory per run, named by time and a random suffix,
never reused (nothing measured is overwritten)."""

from __future__ import annotations

import datetime as _dt
import secrets
from pathlib import Path

from harness.core.errors import ResultsError


def now() -> str:
    """UTC now, as the manifest records times."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def new_run_id() -> str:
    stamp = _dt.datetime.now(_dt.timezone.utc)
    return stamp.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def prepare_run_dir(out: Path, run_id: str) -> Path:
    if Path(out).exists() and not Path(out).is_dir():
        raise ResultsError(f"--out {out} is a file, not a directory")
    run_dir = Path(out) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ResultsError(f"run directory {run_dir} already exists") from None
    except OSError as exc:
        raise ResultsError(f"cannot create {run_dir}: {exc.strerror}") from None
    return run_dir

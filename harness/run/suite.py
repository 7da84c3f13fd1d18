"""Suites: TOML files naming workloads, strategies, runtimes and measurement settings.

```toml
description = "small shapes, under a minute"
workloads  = ["gemm:m=37,n=53,k=91", "mlp:batch=16"]
strategies = ["shared", "per-module"]
runtimes   = ["wasmtime"]
[settings]
samples = 10
sample_s = 0.01
cell_timeout = 120
[runtime_workloads]     # optional: these runtimes run only these of the workloads
"v8@20" = ["gemm:m=37,n=53,k=91"]
```

`runtime_workloads` lets a suite keep its time budget as engines are added: an extra engine
runs fewer workloads, never fewer strategies.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import SuiteError
from harness.core.paths import REPO_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised by the Python 3.10 worker environment
    import tomli as tomllib

SUITES_DIR = REPO_ROOT / "suites"
_LIST_KEYS = ("workloads", "strategies", "runtimes")
_SETTING_KEYS = {"samples": int, "sample_s": float, "warmup_s": float, "warmup_runs": int,
                 "warmup_max_s": float, "steady_window": int, "steady_tol": float,
                 "batch_s": float, "rounds": int, "cell_timeout": float, "seed": int,
                 "order_seed": int, "cell_budget": float}
SEEDS = ("seed", "order_seed")  # may be 0


@dataclass(frozen=True)
class Suite:
    name: str
    description: str = ""
    workloads: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    runtimes: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    #: runtime spec -> the only workloads it runs (a subset of `workloads`)
    runtime_workloads: dict[str, tuple[str, ...]] = field(default_factory=dict)


def available_suites(directory: Path = SUITES_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


def load_suite(name_or_path: str, directory: Path = SUITES_DIR) -> Suite:
    """A suite by name (from `suites/`) or by path to a TOML file."""
    path = _suite_path(name_or_path, directory)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SuiteError(f"suite {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SuiteError(f"cannot read suite {path}: {exc.strerror}") from None
    return parse_suite(path.stem, data, str(path))


def _suite_path(name_or_path: str, directory: Path) -> Path:
    try:
        path = Path(name_or_path)
        if not (path.suffix == ".toml" or path.exists()):
            path = directory / f"{name_or_path}.toml"
        if path.is_dir():
            raise SuiteError(f"suite {path} is a directory, not a TOML file")
        if path.is_file():
            return path
    except (OSError, ValueError, TypeError):  # a name no file system accepts
        pass
    from harness.plugins.params import suggest

    known = available_suites(directory)
    raise SuiteError(f"no suite {name_or_path!r}{suggest(str(name_or_path), known)}; "
                     f"available: {', '.join(known) or 'none'}")


def parse_suite(name: str, data: Any, where: str = "suite") -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(f"{where}: top level must be a table")
    unknown = set(data) - {"description", "settings", "runtime_workloads", *_LIST_KEYS}
    if unknown:
        raise SuiteError(f"{where}: unknown keys {sorted(unknown)}; valid: description, "
                         f"settings, runtime_workloads, {', '.join(_LIST_KEYS)}")
    lists: dict[str, tuple[str, ...]] = {}
    for key in _LIST_KEYS:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SuiteError(f"{where}: {key} must be a list of spec strings")
        lists[key] = tuple(value)
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise SuiteError(f"{where}: [settings] must be a table")
    clean: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in _SETTING_KEYS:
            raise SuiteError(f"{where}: unknown setting {key!r}; valid: "
                             f"{', '.join(sorted(_SETTING_KEYS))}")
        typ = _SETTING_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or (typ is int and not isinstance(value, int)) or \
                (value <= 0 and key not in SEEDS) or (key in SEEDS and not 0 <= value < 2**63):
            raise SuiteError(f"{where}: setting {key} must be a "
                             f"{'non-negative' if key in SEEDS else 'positive'} {typ.__name__}"
                             f", got {value!r}")
        clean[key] = typ(value)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(f"{where}: description must be a string")
    return Suite(name=name, description=description, settings=clean,
                 runtime_workloads=_runtime_workloads(data.get("runtime_workloads", {}), lists,
                                                      where), **lists)


def _runtime_workloads(value: Any, lists: dict[str, tuple[str, ...]],
                       where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise SuiteError(f"{where}: [runtime_workloads] must be a table of runtime = [workloads]")
    out = {}
    for runtime, workloads in value.items():
        if runtime not in lists["runtimes"]:
            raise SuiteError(f"{where}: runtime_workloads names {runtime!r}, which is not in "
                             f"runtimes ({', '.join(lists['runtimes'])})")
        if not isinstance(workloads, list) or not workloads \
                or not all(isinstance(w, str) for w in workloads):
            raise SuiteError(f"{where}: runtime_workloads.{runtime} must be a non-empty list of "
                             "workload specs")
        stray = [w for w in workloads if w not in lists["workloads"]]
        if stray:
            raise SuiteError(f"{where}: runtime_workloads.{runtime} lists {stray}, which are not "
                             "in workloads")
        out[runtime] = tuple(workloads)
    return out

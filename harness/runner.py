"""Running a set of cells: expand the cross product, probe runtimes, run each cell in its
own worker, append each row durably, keep the run manifest current.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.cell import Cell, run_cell
from harness.errors import ResultsError
from harness.fingerprint import command_line, fingerprint
from harness.measure import MeasureSettings
from harness.probe import ProbeResult, probe_runtime
from harness.protocol import write_json_atomic
from harness.registry import RUNTIMES, STRATEGIES, WORKLOADS, Registry
from harness.results import MANIFEST, RESULTS, ResultRow, ResultsWriter
from harness.runtimes.base import Runtime
from harness.strategy import Strategy
from harness.workload import Workload


@dataclass(frozen=True)
class Registries:
    """The three plugin registries, passed explicitly (no module-level state)."""

    workloads: Registry[Workload]
    strategies: Registry[Strategy]
    runtimes: Registry[Runtime]

    @classmethod
    def from_entry_points(cls) -> Registries:
        return cls(Registry(WORKLOADS, "workload"), Registry(STRATEGIES, "strategy"),
                   Registry(RUNTIMES, "runtime"))


@dataclass(frozen=True)
class RunRequest:
    workloads: tuple[str, ...]
    strategies: tuple[str, ...]
    runtimes: tuple[str, ...]
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    cell_timeout: float = 120.0
    suite: str | None = None
    max_memory: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def expand(req: RunRequest, regs: Registries) -> list[Cell]:
    """Parse every spec (failing fast on any bad one) and form the cross product."""
    if not req.workloads:
        raise ResultsError("nothing to run: no workloads given (use --suite or --workload)")
    workloads = [regs.workloads.create(s) for s in req.workloads]
    strategies = [regs.strategies.create(s) for s in req.strategies]
    runtimes = [regs.runtimes.create(s) for s in req.runtimes]
    for w in workloads:  # impossible shapes are refused before any work
        w.check_limits(req.max_memory)
        w.tensors  # noqa: B018 - building tensors validates shapes
    return [Cell(w, s, r) for w, s, r in itertools.product(workloads, strategies, runtimes)]


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def prepare_run_dir(out: Path, run_id: str) -> Path:
    run_dir = Path(out) / run_id
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise ResultsError(f"run directory {run_dir} already exists") from None
    except OSError as exc:
        raise ResultsError(f"cannot create {run_dir}: {exc.strerror}") from None
    return run_dir


ProgressFn = Callable[[int, int, Cell, ResultRow | None], None]


def execute(cells: Sequence[Cell], run_dir: Path, req: RunRequest,
            progress: ProgressFn | None = None) -> list[ResultRow]:
    """Run every cell into `run_dir`; each row is on disk before the next cell starts."""
    run_id = run_dir.name
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "suite": req.suite,
        "settings": req.settings.to_dict(),
        "cell_timeout": req.cell_timeout,
        "cells_planned": len(cells),
        "fingerprint": fingerprint(),
        "runtimes": {},
        "status": "running",
        **req.extra,
    }
    write_json_atomic(run_dir / MANIFEST, manifest)
    probes: dict[str, ProbeResult] = {}
    for rt in {c.runtime.spec: c.runtime for c in cells}.values():
        probes[rt.spec] = probe_runtime(rt, timeout_s=min(req.cell_timeout, 120.0))
    manifest["runtimes"] = {k: v.to_dict() for k, v in probes.items()}
    write_json_atomic(run_dir / MANIFEST, manifest)
    rows: list[ResultRow] = []
    try:
        with ResultsWriter(run_dir / RESULTS) as writer:
            for i, cell in enumerate(cells):
                if progress:
                    progress(i, len(cells), cell, None)
                row = run_cell(cell, run_id, req.settings, req.cell_timeout,
                               probes[cell.runtime.spec])
                writer.append(row)
                rows.append(row)
                if progress:
                    progress(i + 1, len(cells), cell, row)
        manifest["status"] = "complete"
    except KeyboardInterrupt:
        manifest["status"] = "interrupted"
        raise
    finally:
        manifest["cells_done"] = len(rows)
        write_json_atomic(run_dir / MANIFEST, manifest)
    return rows

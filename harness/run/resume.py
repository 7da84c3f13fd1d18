"""Resuming a run: `membench run --resume RUN_DIR`.

Every run records its request in `run.json` (the cells as canonical specs, the settings
with the resolved order seed, the limits). Resuming rebuilds exactly those cells and the
same per-round schedule, reads the rows already in `results.jsonl` and skips what is
finished: a cell with its final row, a round with its round row, a runtime with its
memory baseline. Only rows carrying the run's own settings count. The rest is appended to
the same file, so a run killed at any point and resumed has every cell once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.errors import ResultsError
from harness.results.rows import KINDS, ResultRow, read_manifest, read_rows
from harness.worker.measure import MeasureSettings

if TYPE_CHECKING:
    from harness.run.cell import Cell
    from harness.run.runner import Registries, RunRequest

#: (workload, strategy, runtime, side): `Cell.run_key`
CellKey = tuple[str, str, str, str]
REQUEST = "request"  # key of the recorded request in run.json


@dataclass(frozen=True)
class Done:
    """What a run already has on disk, by `Cell.run_key` (the side tells the A and B cells
    of an A/B run apart)."""

    manifest: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, ResultRow] = field(default_factory=dict)   # by runtime spec
    finals: dict[CellKey, ResultRow] = field(default_factory=dict)  # `cell` and `noop` rows
    rounds: dict[tuple[CellKey, int], ResultRow] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[ResultRow], manifest: dict[str, Any]) -> Done:
        done = cls(manifest=manifest)
        for r in rows:
            key = (r.workload, r.strategy, r.runtime, r.side)
            if r.kind == "baseline":
                done.baselines[r.runtime] = r
            elif r.kind in ("cell", "noop"):
                done.finals[key] = r
            elif r.kind == "round" and r.round is not None:
                done.rounds[(key, r.round)] = r
        return done


def request_record(req: RunRequest, cells: list[Cell]) -> dict[str, Any]:
    """The part of `run.json` that `--resume` rebuilds the run from."""
    rec: dict[str, Any] = {
        "cells": [list(c.key) for c in cells], "settings": req.settings.to_dict(),
        "cell_timeout": req.cell_timeout, "suite": req.suite, "max_memory": req.max_memory,
        "worker_memory_limit": req.worker_memory_limit, "pin": list(req.pin),
        "calibrate": req.calibrate, "cell_budget": req.cell_budget,
        "interference_s": req.interference_s, "lockstep": req.lockstep, "extra": req.extra}
    if any(c.side for c in cells):  # an A/B run: which side each cell is, run by which checkout
        rec["sides"] = [c.side for c in cells]
        rec["repos"] = [str(c.repo.resolve()) if c.repo else None for c in cells]
    return rec


def load_resume(run_dir: Path, regs: Registries) -> tuple[RunRequest, list[Cell], Done]:
    """The request, cells and finished work of the run in `run_dir`."""
    from harness.run.cell import Cell
    from harness.run.runner import RunRequest

    manifest = read_manifest(run_dir)
    rec = manifest.get(REQUEST)
    if not isinstance(rec, dict):
        raise ResultsError(f"{run_dir} cannot be resumed: its run.json records no request "
                           "(written by an older membench)")
    try:
        n = len(rec["cells"])
        sides, repos = rec.get("sides") or [""] * n, rec.get("repos") or [None] * n
        if len(sides) != n or len(repos) != n:
            raise ValueError("sides or repos do not match the cells")
        cells = [Cell(regs.workloads.create(w), regs.strategies.create(s),
                      regs.runtimes.create(r), side, Path(repo) if repo else None)
                 for (w, s, r), side, repo in zip(rec["cells"], sides, repos, strict=True)]
        req = RunRequest(
            workloads=tuple(dict.fromkeys(c.workload.spec for c in cells)),
            strategies=tuple(dict.fromkeys(c.strategy.spec for c in cells)),
            runtimes=tuple(dict.fromkeys(c.runtime.spec for c in cells)),
            settings=MeasureSettings.from_dict(rec["settings"]),
            cell_timeout=float(rec["cell_timeout"]), suite=rec.get("suite"),
            max_memory=rec.get("max_memory"), worker_memory_limit=rec.get("worker_memory_limit"),
            pin=tuple(rec.get("pin", ())), calibrate=bool(rec.get("calibrate", True)),
            cell_budget=rec.get("cell_budget"),
            interference_s=float(rec.get("interference_s", RunRequest.interference_s)),
            lockstep=bool(rec.get("lockstep", False)), extra=dict(rec.get("extra", {})))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResultsError(f"{run_dir}/run.json: malformed request record ({exc})") from None
    return req, cells, Done.from_rows(read_rows(run_dir, kinds=KINDS), manifest)


def ab_state(cells: list[Cell], done: Done) -> str:
    """"ab": an A/B run whose run.json records its sides; "old-ab": rows with sides but a
    run.json that does not record them (an older membench: it cannot be resumed); "": a
    plain run."""
    if any(c.side for c in cells):
        return "ab"
    keys = [*done.finals, *(k for k, _ in done.rounds)]
    return "old-ab" if any(k[3] for k in keys) else ""

"""Resuming a run: `membench run --resume RUN_DIR`.

Every run records its request in `run.json` (the cells as canonical specs, the settings
with the resolved order seed, the limits). Resuming rebuilds exactly those cells and the
same per-round schedule, reads the rows already in `results.jsonl` and skips what is
finished: a cell with its final row, a round with its round row, a runtime with its
memory baseline, a cell's instruction count with its `counts` row. Only rows carrying the
run's own settings count. The rest is appended to the same file, so a run killed at any
point and resumed has every cell once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.run.request import REQUEST, Cell, Registries, RunRequest
from harness.store.manifest import read_manifest
from harness.store.rows import KINDS, CellKey, ResultRow, read_rows

#: `Cell.run_key`: the cell and its side ("" outside an A/B run)
RunKey = tuple[CellKey, str]


@dataclass(frozen=True)
class Done:
    """What a run already has on disk, by `Cell.run_key` (the side tells the A and B cells
    of an A/B run apart)."""

    manifest: dict[str, Any] = field(default_factory=dict)
    baselines: dict[str, ResultRow] = field(default_factory=dict)   # by runtime spec
    finals: dict[RunKey, ResultRow] = field(default_factory=dict)   # `cell` and `noop` rows
    rounds: dict[tuple[RunKey, int], ResultRow] = field(default_factory=dict)
    #: isolation probes already run: (strategy, runtime, probe)
    isolation: set[tuple[str, str, str]] = field(default_factory=set)
    #: the metrics of cells whose instructions are counted (their `counts` rows)
    counted: dict[RunKey, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[ResultRow], manifest: dict[str, Any]) -> Done:
        done = cls(manifest=manifest)
        for r in rows:
            key = (r.key, r.side)
            if r.kind == "baseline":
                done.baselines[r.runtime] = r
            elif r.kind in ("cell", "noop"):
                done.finals[key] = r
            elif r.kind == "round" and r.round is not None:
                done.rounds[(key, r.round)] = r
            elif r.kind == "counts":
                done.counted[key] = r.metrics
            elif r.kind == "isolation":
                done.isolation.add((r.strategy, r.runtime, str(r.metrics.get("probe"))))
            elif r.kind == "race":
                done.isolation.add((r.strategy, r.runtime, "race"))
        return done


def load_resume(run_dir: Path, regs: Registries) -> tuple[RunRequest, list[Cell], Done]:
    """The request, cells and finished work of the run in `run_dir`."""
    manifest = read_manifest(run_dir)
    rec = manifest.get(REQUEST)
    if not isinstance(rec, dict):
        raise ResultsError(f"{run_dir} cannot be resumed: its run.json records no request "
                           "(written by an older membench)")
    req, cells = RunRequest.from_record(rec, regs, where=f"{run_dir}/run.json")
    rows = read_rows(run_dir, kinds=(*KINDS, "isolation", "race"))
    return req, cells, Done.from_rows(rows, manifest)


def ab_state(cells: list[Cell], done: Done) -> str:
    """"ab": an A/B run whose run.json records its sides; "old-ab": rows with sides but a
    run.json that does not record them (an older membench: it cannot be resumed); "": a
    plain run."""
    if any(c.side for c in cells):
        return "ab"
    keys = [*done.finals, *(k for k, _ in done.rounds)]
    return "old-ab" if any(side for _, side in keys) else ""

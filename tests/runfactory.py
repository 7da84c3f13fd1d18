"""Synthetic run directories for tests of compare, history and merge."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.store.rows import ResultRow, ResultsWriter


def make_run(root: Path, run_id: str, cells: Mapping[tuple[str, str, str], Sequence[float]],
             machine: str = "m1", commit: str = "c0", created: str = "2026-01-01T00:00:00",
             suite: str = "quick", status: str = "complete",
             extra: Mapping[str, Any] | None = None) -> Path:
    d = root / run_id
    d.mkdir(parents=True)
    with ResultsWriter(d / "results.jsonl") as w:
        for (wl, st, rt), samples in cells.items():
            w.append(ResultRow(run_id=run_id, workload=wl, strategy=st, runtime=rt,
                               status="ok" if samples else "crashed",
                               samples_s=tuple(samples),
                               median_s=sorted(samples)[len(samples) // 2] if samples else None))
    manifest = {"run_id": run_id, "created": created, "suite": suite, "status": status,
                "cells_planned": len(cells),
                "fingerprint": {"machine_id": machine, "cpu_model": machine, "cpu_count": 2,
                                "git": {"commit": commit, "dirty": False}}}
    manifest.update(extra or {})
    (d / "run.json").write_text(json.dumps(manifest))
    return d

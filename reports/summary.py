"""Heatmap matrices: per runtime and workload family, each strategy's geometric mean of
median times relative to a baseline on the same runtime (`shared` when it ran there).

These are ratios of medians, for a picture by family; the report's answer (`reports.answer`)
uses the paired ratios of comparison groups, with their CIs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reports.data import CellResult, RunData
from reports.palette import base_name

BASELINE = "shared"


def baseline_for(run: RunData, runtime: str, cells: Sequence[CellResult] | None = None) -> str:
    """`shared` if it has an ok cell on this runtime, else the strategy with the most."""
    pool = [c for c in (cells if cells is not None else run.bench_cells)
            if c.runtime == runtime and c.ok]
    counts: dict[str, int] = {}
    for c in pool:
        counts[c.strategy] = counts.get(c.strategy, 0) + 1
    if BASELINE in counts:
        return BASELINE
    if not counts:
        return BASELINE
    return min(counts, key=lambda s: (-counts[s], s))


@dataclass(frozen=True)
class Matrix:
    """Strategy × runtime values for a heatmap; NaN where nothing comparable ran."""

    title: str
    strategies: list[str]
    runtimes: list[str]
    values: np.ndarray          # shape (len(strategies), len(runtimes))
    baselines: dict[str, str]   # runtime -> baseline strategy
    notes: dict[tuple[str, str], str]   # (strategy, runtime) -> why empty


def normalised_matrix(run: RunData, workloads: Sequence[str], title: str) -> Matrix:
    strategies, runtimes = run.strategies, run.runtimes
    values = np.full((len(strategies), len(runtimes)), np.nan)
    baselines: dict[str, str] = {}
    notes: dict[tuple[str, str], str] = {}
    for j, rt in enumerate(runtimes):
        base = baseline_for(run, rt)
        baselines[rt] = base
        for i, s in enumerate(strategies):
            logs = []
            statuses = set()
            for w in workloads:
                c, b = run.cell(w, s, rt), run.cell(w, base, rt)
                if c is not None:
                    statuses.add(c.status)
                if c is not None and b is not None and c.ok and b.ok:
                    logs.append(math.log(c.median / b.median))
            if logs:
                values[i, j] = math.exp(sum(logs) / len(logs))
            else:
                notes[(s, rt)] = "/".join(sorted(statuses - {"ok"})) or "no data"
    return Matrix(title, strategies, runtimes, values, baselines, notes)


def workload_groups(run: RunData) -> dict[str, list[str]]:
    """Workloads grouped by family (`gemm:m=..` and `gemm:m=..` are one group)."""
    groups: dict[str, list[str]] = {}
    for w in run.workloads:
        groups.setdefault(base_name(w), []).append(w)
    return groups


def heatmap_matrices(run: RunData) -> list[Matrix]:
    suite = run.manifest.get("suite")
    title = f"Suite {suite}: all workloads" if suite else "All workloads of the run"
    mats = [normalised_matrix(run, run.workloads, title)]
    for group, ws in workload_groups(run).items():
        n = f"{len(ws)} workload{'s' if len(ws) != 1 else ''}"
        mats.append(normalised_matrix(run, ws, f"Group {group} ({n})"))
    return mats

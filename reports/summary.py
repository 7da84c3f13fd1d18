"""The speed summary: per-workload winners, geometric means with CIs, heatmap matrices.

Ratios are of steady-state medians. Per workload a strategy is compared with the fastest
strategy on the same runtime (ratio and bootstrap CI from `harness.analysis.stats.compare_samples`).
Across workloads, strategies are compared with a baseline on the same runtime — `shared`
when it ran there — because a geometric mean of ratios to a fixed baseline ranks strategies
the same way whichever baseline is chosen, while a per-workload 'best' would not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from harness.analysis.stats import compare_samples, geomean_ratio
from reports.data import CellResult, RunData
from reports.palette import base_name

BASELINE = "shared"


@dataclass(frozen=True)
class Entry:
    """One strategy on one runtime for one workload, as the headline shows it."""

    strategy: str
    status: str
    median: float | None = None
    ratio: float | None = None       # median / best median on the runtime (1.0 for the best)
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str = ""

    @property
    def best(self) -> bool:
        return self.ratio == 1.0

    @property
    def tied(self) -> bool:
        """Not distinguishable from the best: its ratio's 95% CI reaches 1."""
        return self.ratio is not None and self.ci_low is not None and self.ci_low <= 1.0


@dataclass(frozen=True)
class HeadlineRow:
    workload: str
    per_runtime: dict[str, tuple[Entry, ...]]   # best first, then slower, then not-ok


def headline(run: RunData) -> list[HeadlineRow]:
    out = []
    for w in run.workloads:
        per_rt: dict[str, tuple[Entry, ...]] = {}
        for rt in run.runtimes:
            cells = [c for s in run.strategies if (c := run.cell(w, s, rt)) is not None]
            per_rt[rt] = _rank(cells)
        out.append(HeadlineRow(w, per_rt))
    return out


def _rank(cells: Sequence[CellResult]) -> tuple[Entry, ...]:
    ok = sorted((c for c in cells if c.ok), key=lambda c: c.median)
    entries: list[Entry] = []
    if ok:
        best = ok[0]
        entries.append(Entry(best.strategy, "ok", best.median, 1.0, 1.0, 1.0))
        for c in ok[1:]:
            cmp = compare_samples(best.samples, c.samples)
            entries.append(Entry(c.strategy, "ok", c.median, cmp.ratio, cmp.ci_low, cmp.ci_high))
    entries += [Entry(c.strategy, c.status, reason=c.reason) for c in cells if not c.ok]
    return tuple(entries)


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
class GeoMean:
    runtime: str
    strategy: str
    baseline: str
    ratio: float
    ci_low: float
    ci_high: float
    n: int                  # workloads in the mean (both strategy and baseline ok)
    of: int                 # workloads in the run

    @property
    def is_baseline(self) -> bool:
        return self.strategy == self.baseline

    @property
    def tied(self) -> bool:
        """Not distinguishable from the baseline: the 95% CI contains 1."""
        return not self.is_baseline and self.ci_low <= 1.0 <= self.ci_high


def geomeans(run: RunData) -> list[GeoMean]:
    """Per runtime and strategy: geometric mean over workloads of time / baseline time."""
    out = []
    workloads = run.workloads
    for rt in run.runtimes:
        base = baseline_for(run, rt)
        for s in run.strategies:
            pairs = []
            for w in workloads:
                c, b = run.cell(w, s, rt), run.cell(w, base, rt)
                if c is not None and b is not None and c.ok and b.ok:
                    pairs.append((c.samples, b.samples))
            if pairs:
                g, lo, hi = geomean_ratio(pairs)
                out.append(GeoMean(rt, s, base, g, lo, hi, len(pairs), len(workloads)))
    return out


def fastest(geo: Sequence[GeoMean], runtime: str) -> str | None:
    """The strategy with the lowest geometric mean on a runtime among those that ran every
    workload the baseline ran (a mean over fewer workloads is not comparable)."""
    pool = [g for g in geo if g.runtime == runtime]
    if not pool:
        return None
    full = max(g.n for g in pool)
    return min((g for g in pool if g.n == full), key=lambda g: g.ratio).strategy


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

"""Run history: every run under a results directory, per machine and cell, with step detection.

Steps are found as asv does in spirit: fit a piecewise-constant function to the log of the
per-run medians, trading fit against the number of segments (a Potts / optimal-partition
fit solved exactly by dynamic programming), then report every boundary where the level
rises by more than the threshold.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from harness.core.errors import ResultsError
from harness.store.manifest import MANIFEST
from harness.store.rows import RESULTS


@dataclass(frozen=True)
class RunPoint:
    run_id: str
    created: str
    commit: str | None
    runtime_version: str
    median_s: float


@dataclass(frozen=True)
class StepChange:
    index: int              # first run of the new level
    run_id: str
    commit: str | None
    before_s: float
    after_s: float

    @property
    def ratio(self) -> float:
        return self.after_s / self.before_s


@dataclass
class CellHistory:
    machine: str
    key: tuple[str, str, str]
    points: list[RunPoint] = field(default_factory=list)

    @property
    def cell(self) -> str:
        return " | ".join(self.key)


#: how `ResultsWriter` (json.dumps) spells a per-round row; skipping those lines unparsed
#: makes reading a history about five times faster
_ROUND_ROW = '"kind": "round"'


def _runs(results_dir: Path) -> list[Path]:
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir} is not a directory")
    return [p for p in results_dir.iterdir() if (p / MANIFEST).is_file() and (p / RESULTS).is_file()]


def load_history(results_dir: Path) -> tuple[list[CellHistory], int]:
    """Per (machine, cell) series of ok medians, oldest run first; also the number of runs read."""
    series: dict[tuple[str, tuple[str, str, str]], list[RunPoint]] = defaultdict(list)
    runs = _runs(Path(results_dir))
    for run in runs:
        try:
            manifest = json.loads((run / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if not isinstance(manifest, dict):
            continue  # not a run manifest: not a run
        fp = manifest.get("fingerprint")
        fp = fp if isinstance(fp, dict) else {}
        machine = str(fp.get("machine_id", "unknown"))
        git = fp.get("git")
        commit = git.get("commit") if isinstance(git, dict) else None
        created = str(manifest.get("created", ""))
        run_id = str(manifest.get("run_id", run.name))
        with open(run / RESULTS, encoding="utf-8", errors="replace") as f:
            for line in f:
                if _ROUND_ROW in line:
                    continue  # most of a file: per-round rows; only final cell rows count
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    continue  # a truncated last line of an interrupted run
                if not isinstance(row, dict) or row.get("kind", "cell") != "cell" \
                        or row.get("status") != "ok" or not row.get("samples_s"):
                    continue
                key = (str(row.get("workload")), str(row.get("strategy")), str(row.get("runtime")))
                info = row.get("runtime_info")
                try:
                    med = float(median(row["samples_s"]))
                except (TypeError, ValueError):
                    continue  # a malformed row: not a measurement
                series[(machine, key)].append(RunPoint(
                    run_id, created, commit,
                    str(info.get("version", "")) if isinstance(info, dict) else "", med))
    out = []
    for (machine, key), pts in sorted(series.items()):
        pts.sort(key=lambda p: (p.created, p.run_id))
        out.append(CellHistory(machine, key, pts))
    return out, len(runs)


def piecewise_constant(y: Sequence[float] | np.ndarray, penalty: float | None = None) -> list[int]:
    """Optimal partition of `y` into constant segments (least squares + `penalty` per segment).

    Returns the start index of every segment after the first. The default penalty is
    BIC-like, 2·σ²·ln(n) with σ estimated robustly from successive differences, so noise
    alone rarely opens a segment.
    """
    x = np.asarray(y, dtype=np.float64)
    n = x.size
    if n < 2:
        return []
    if penalty is None:
        d = np.diff(x)
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2)
        sigma = max(sigma, 1e-3)  # below 0.1% noise, treat as 0.1% so rounding never splits
        penalty = 2.0 * sigma**2 * math.log(n) * 2.0
    s = np.concatenate([[0.0], np.cumsum(x)])
    s2 = np.concatenate([[0.0], np.cumsum(x * x)])
    best = np.empty(n + 1)
    best[0] = -penalty
    arg = np.zeros(n + 1, dtype=np.int64)
    for j in range(1, n + 1):
        starts = np.arange(j)
        seg = s2[j] - s2[starts] - (s[j] - s[starts]) ** 2 / (j - starts)
        total = best[:j] + seg + penalty
        k = int(np.argmin(total))
        best[j], arg[j] = total[k], k
    cuts: list[int] = []
    end = n
    while end > 0:
        start = int(arg[end])
        if start > 0:
            cuts.append(start)
        end = start
    return sorted(cuts)


def detect_steps(hist: CellHistory, threshold: float = 0.05,
                 penalty: float | None = None) -> list[StepChange]:
    """Boundaries where the fitted level rises by more than `threshold` (regressions)."""
    med = [p.median_s for p in hist.points]
    cuts = piecewise_constant(np.log(med), penalty)
    bounds = [0, *cuts, len(med)]
    levels = [float(np.exp(np.mean(np.log(med[a:b])))) for a, b in itertools.pairwise(bounds)]
    steps = []
    for k, cut in enumerate(cuts):
        before, after = levels[k], levels[k + 1]
        if after > before * (1 + threshold):
            p = hist.points[cut]
            steps.append(StepChange(cut, p.run_id, p.commit, before, after))
    return steps


def history_summary(cells: Sequence[CellHistory], threshold: float) -> list[dict[str, Any]]:
    out = []
    for h in cells:
        steps = detect_steps(h, threshold)
        out.append({"machine": h.machine, "cell": h.cell, "runs": len(h.points),
                    "latest_s": h.points[-1].median_s,
                    "steps": [{"run_id": s.run_id, "commit": s.commit, "ratio": s.ratio,
                               "before_s": s.before_s, "after_s": s.after_s} for s in steps]})
    return out

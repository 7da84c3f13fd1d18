"""A run directory read for reporting: raw rows, merged cells, and the tidy CSVs.

Rows are read as plain dicts (not `ResultRow`) so fields added by newer harness versions
reach the report and the CSV instead of being dropped; every field is read with a default,
so older or partial rows work too. Rows of the same cell (several rounds) are merged: the
samples of their `ok` rows pooled, every failing row still listed among the problems.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.analysis.stats import Summary, summarize
from harness.store.manifest import MANIFEST, read_manifest
from harness.store.rows import RESULTS, ResultRow, iter_rows
from reports.palette import base_name, strategy_order

Key = tuple[str, str, str]  # (workload, strategy, runtime)
OVERHEAD_WORKLOADS = ("noop",)  # embedding-calibration cells: shown apart, not ranked


@dataclass(frozen=True)
class CellResult:
    """One cell (workload × strategy × runtime), its rows merged."""

    workload: str
    strategy: str
    runtime: str
    status: str
    reason: str
    samples: tuple[float, ...]
    summary: Summary | None
    row: Mapping[str, Any]  # the cell's last row, for everything but samples

    @property
    def key(self) -> Key:
        return (self.workload, self.strategy, self.runtime)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.summary is not None

    @property
    def median(self) -> float:
        return self.summary.median if self.summary else math.nan


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    manifest: Mapping[str, Any]
    rows: tuple[Mapping[str, Any], ...]   # every row of every kind, as read
    cells: tuple[CellResult, ...]         # kind "cell", merged per key

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or self.run_dir.name)

    @property
    def bench_cells(self) -> list[CellResult]:
        """Cells that measure a workload (calibration cells such as `noop` excluded)."""
        return [c for c in self.cells if base_name(c.workload) not in OVERHEAD_WORKLOADS]

    @property
    def overhead_cells(self) -> list[CellResult]:
        return [c for c in self.cells if base_name(c.workload) in OVERHEAD_WORKLOADS]

    @property
    def workloads(self) -> list[str]:
        return list(dict.fromkeys(c.workload for c in self.bench_cells))

    @property
    def strategies(self) -> list[str]:
        return strategy_order(c.strategy for c in self.bench_cells)

    @property
    def runtimes(self) -> list[str]:
        return list(dict.fromkeys(c.runtime for c in self.bench_cells))

    def cell(self, workload: str, strategy: str, runtime: str) -> CellResult | None:
        for c in self.cells:
            if c.key == (workload, strategy, runtime):
                return c
        return None

    def rows_of_kind(self, kind: str) -> list[Mapping[str, Any]]:
        return [r for r in self.rows if r.get("kind", "cell") == kind]


def _summary(samples: Sequence[float]) -> Summary | None:
    clean = [s for s in samples if isinstance(s, (int, float)) and math.isfinite(s) and s > 0]
    return summarize(clean) if clean else None


def _key(r: Mapping[str, Any]) -> Key:
    return (str(r.get("workload", "?")), str(r.get("strategy", "?")), str(r.get("runtime", "?")))


def merge_cells(rows: Sequence[Mapping[str, Any]]) -> tuple[CellResult, ...]:
    """One result per cell: its `cell` row(s), or, for a cell whose run stopped before its
    final row was written, its finished `round` rows pooled (and said to be partial)."""
    groups: dict[Key, list[Mapping[str, Any]]] = {}
    rounds: dict[Key, list[Mapping[str, Any]]] = {}
    for r in rows:
        kind = r.get("kind", "cell")
        if kind == "cell":
            groups.setdefault(_key(r), []).append(r)
        elif kind == "round":
            rounds.setdefault(_key(r), []).append(r)
    finals = {_key(r) for r in rows if r.get("kind", "cell") != "round"}  # cell, noop, ...
    for key, rs in rounds.items():
        if key not in finals:
            groups[key] = rs
    cells = []
    for (w, s, rt), group in groups.items():
        ok_rows = [r for r in group if r.get("status") == "ok"]
        bad_rows = [r for r in group if r.get("status") != "ok"]
        last = (bad_rows or ok_rows)[-1]
        samples = tuple(float(x) for r in ok_rows for x in (r.get("samples_s") or ()))
        status = "ok" if not bad_rows else str(last.get("status", "unknown"))
        reason = str(last.get("reason") or "")
        if status == "ok" and not samples and isinstance(last.get("median_s"), (int, float)):
            # imported results may carry a median without raw samples
            samples = (float(last["median_s"]),)
            reason = "only a median was recorded (no raw samples): no confidence interval"
        summary = _summary(samples)
        if group[0].get("kind") == "round":
            n = sorted(int(r.get("round") or 0) for r in group)
            reason = (f"partial: the run stopped after round(s) {', '.join(map(str, n))} of "
                      f"this cell; no final row" + (f"; {reason}" if reason else ""))
        if status == "ok" and summary is None:
            status, reason = "invalid", "status ok but no usable timing samples"
        cells.append(CellResult(w, s, rt, status, reason, samples, summary,
                                ok_rows[-1] if status == "ok" else last))
    return tuple(cells)


def load_run(run_dir: Path) -> RunData:
    """Read `run.json` (tolerating its absence) and every row of `results.jsonl`."""
    run_dir = Path(run_dir)
    try:
        manifest: Mapping[str, Any] = read_manifest(run_dir)
    except Exception:  # a run killed before its manifest was written still has rows
        manifest = {"status": "unknown (no readable run.json)"}
    rows: tuple[Mapping[str, Any], ...] = ()
    if (run_dir / RESULTS).is_file():
        rows = tuple(iter_rows(run_dir / RESULTS))
    return RunData(run_dir, manifest, rows, merge_cells(rows))


def has_run_files(run_dir: Path) -> bool:
    return (Path(run_dir) / RESULTS).is_file() or (Path(run_dir) / MANIFEST).is_file()


# -- per-cell figures read from a row, tolerating absent and renamed fields ------------------

def _total(value: Any) -> float | None:
    """A phase is a number or a dict of numbers (per module / per instance): its sum."""
    if isinstance(value, Mapping):
        nums = [v for v in value.values() if isinstance(v, (int, float))]
        return float(sum(nums)) if nums else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _first(d: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if d.get(n) is not None:
            return d[n]
    return None


PHASES = ("compile", "instantiate", "weight load", "first inference")


def phases(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Start-up phases of a cell in seconds (None when the row does not say)."""
    p = row.get("phases") or {}
    return {"compile": _total(_first(p, "compile_s", "compile")),
            "instantiate": _total(_first(p, "instantiate_s", "instantiate")),
            "weight load": _total(_first(p, "setup_s", "weight_load_s", "weights_s")),
            "first inference": _total(_first(p, "first_run_s", "first_inference_s"))}


MEMORY = ("peak RSS", "committed linear memory", "reserved virtual memory")


def round_phases(row: ResultRow) -> list[dict[str, Any]]:
    """A final row's phases, one dict per round (the row's own when it has no rounds)."""
    per_round = [p for r in row.rounds if isinstance(p := r.get("phases"), dict)]
    return per_round or [row.phases]


def memory(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Footprint in bytes. Peak RSS is above the worker's own baseline when it was measured;
    for a variant of a comparison group (one process for all), what loading it added."""
    m = row.get("memory") or {}
    peak = _first(m, "peak_rss_over_baseline", "rss_load_delta")
    if peak is None and m.get("peak_rss") is not None:
        peak = m["peak_rss"] - (m.get("baseline_rss") or 0)
    return {"peak RSS": _total(peak),
            "committed linear memory": _total(_first(m, "linear_bytes", "linear_committed")),
            "reserved virtual memory": _total(_first(m, "vms_reserved", "reserved_bytes"))}


def peak_is_relative(run: RunData) -> bool:
    return any(any(k in (c.row.get("memory") or {}) for k in ("peak_rss_over_baseline",
                                                               "baseline_rss", "rss_load_delta"))
               for c in run.cells)


# -- tidy tables ---------------------------------------------------------------------------

def _flat(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(f"{prefix}_{k}", v))
        return out
    if isinstance(value, (list, tuple)):
        return {prefix: " ".join(str(v) for v in value)}
    return {prefix: value}


def cell_records(run: RunData) -> list[dict[str, Any]]:
    """One flat record per cell: identity, status, timing summary, phases, counts, memory."""
    records = []
    for c in run.cells:
        r, s = c.row, c.summary
        rec: dict[str, Any] = {
            "run_id": r.get("run_id", run.run_id), "kind": "cell",
            "workload": c.workload, "workload_name": base_name(c.workload),
            "strategy": c.strategy, "strategy_name": base_name(c.strategy),
            "runtime": c.runtime, "runtime_name": base_name(c.runtime),
            "status": c.status, "reason": c.reason, "n_samples": len(c.samples),
            "median_s": s.median if s else None, "mean_s": s.mean if s else None,
            "stdev_s": s.stdev if s else None, "ci_low_s": s.ci_low if s else None,
            "ci_high_s": s.ci_high if s else None, "cv": s.cv if s else None,
            "robust_cv": s.rcv if s else None,
            "outliers": s.outliers if s else None, "inner": r.get("inner"),
        }
        rec.update({f"{k.replace(' ', '_')}_s": v for k, v in phases(r).items()})
        rec.update({"bytes_copied_per_run": r.get("bytes_copied_per_run"),
                    "host_calls_per_run": r.get("host_calls_per_run"),
                    "calls_per_run": r.get("calls_per_run"), "flops": r.get("flops"),
                    "gflops": r["flops"] / s.median / 1e9 if s and r.get("flops") else None,
                    "compulsory_bytes": r.get("compulsory_bytes"),
                    "max_abs_err": r.get("max_abs_err")})
        mem = memory(r)
        rec.update({"peak_rss_bytes": mem["peak RSS"],
                    "linear_bytes": mem["committed linear memory"],
                    "vms_reserved_bytes": mem["reserved virtual memory"]})
        info = r.get("runtime_info") or {}
        rec["runtime_version"] = info.get("version")
        rec.update(_flat("metric", r.get("metrics") or {}))
        rec["wall_s"] = r.get("wall_s")
        records.append(rec)
    return records


def write_csvs(run: RunData, out_dir: Path) -> dict[str, Path]:
    """`results.csv` (one row per cell) and `samples.csv` (one row per timing sample)."""
    import pandas as pd

    paths = {"results": out_dir / "results.csv", "samples": out_dir / "samples.csv"}
    frame = pd.DataFrame(cell_records(run))
    frame.to_csv(paths["results"], index=False)
    samples = [{"workload": c.workload, "strategy": c.strategy, "runtime": c.runtime,
                "sample": i, "seconds": x} for c in run.cells for i, x in enumerate(c.samples)]
    pd.DataFrame(samples, columns=["workload", "strategy", "runtime", "sample", "seconds"]) \
        .to_csv(paths["samples"], index=False)
    return paths


# -- what a run planned but did not do -------------------------------------------------------

def planned_keys(run: RunData) -> list[Key]:
    """The cells the run meant to do: from the manifest's schedule when it lists them (as
    "workload | strategy | runtime"), else the cross product of what the rows mention.
    Calibration cells are left out."""
    listed = (run.manifest.get("schedule") or {}).get("cells") or run.manifest.get("cells")
    keys: list[Key] = []
    if isinstance(listed, list):
        for item in listed:
            parts = item.split(" | ") if isinstance(item, str) else list(item)
            if len(parts) == 3:
                keys.append((str(parts[0]), str(parts[1]), str(parts[2])))
    if not keys:
        ws = list(dict.fromkeys(c.workload for c in run.cells))
        ss = list(dict.fromkeys(c.strategy for c in run.cells))
        rs = list(dict.fromkeys(c.runtime for c in run.cells))
        keys = list(itertools.product(ws, ss, rs))
    return [k for k in keys if base_name(k[0]) not in OVERHEAD_WORKLOADS]


@dataclass(frozen=True)
class Completeness:
    status: str
    planned: int | None
    done: int                  # cells with a final row
    partial: tuple[Key, ...]   # cells with some rounds but no final row
    missing: tuple[Key, ...]   # planned cells with no row at all
    rounds: str                # "2 of 3" when the manifest says
    complete: bool


def completeness(run: RunData) -> Completeness:
    status = str(run.manifest.get("status", "unknown"))
    planned = run.manifest.get("cells_planned")
    planned = int(planned) if isinstance(planned, int) else None
    final = {_key(r) for r in run.rows if r.get("kind", "cell") == "cell"}
    have = {c.key for c in run.bench_cells}
    partial = tuple(sorted(have - final))
    missing = tuple(k for k in planned_keys(run) if k not in have)
    done = len(have & final)
    sched = run.manifest.get("schedule") or {}
    rounds = ""
    if isinstance(sched.get("rounds"), int) and run.manifest.get("rounds_done") is not None:
        rounds = f"{run.manifest['rounds_done']} of {sched['rounds']}"
    complete = (status == "complete" and not missing and not partial
                and (planned is None or done >= planned))
    return Completeness(status, planned, done, partial, missing, rounds, complete)

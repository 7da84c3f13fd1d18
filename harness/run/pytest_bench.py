"""Turning a pytest-benchmark JSON file into a harness run (results.jsonl + run.json).

Each benchmark becomes one `cell` row. The cell's identity comes from `extra_info`
(`workload`, `strategy`, `runtime`, as `benchmarks/test_quick_suite.py` records it); a
benchmark without it keeps its pytest name as the workload, strategy `pytest-benchmark`
and runtime `-`. Raw per-round times (`stats.data`, present with `--benchmark-json` or
`--benchmark-save-data`) become `samples_s`, so the same bootstrap intervals and tests
apply; without them the row keeps pytest-benchmark's summary only and `membench compare`
reports the cell as not comparable.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from harness.analysis.stats import summarize
from harness.core.errors import ResultsError
from harness.core.protocol import write_json_atomic
from harness.probes.fingerprint import machine_key
from harness.run.rundir import prepare_run_dir
from harness.store.manifest import MANIFEST
from harness.store.rows import RESULTS, ResultRow, ResultsWriter

SOURCE = "pytest-benchmark"


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"no such file: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {exc.strerror}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultsError(f"{path} is not a pytest-benchmark JSON file (no 'benchmarks' list)")
    return data


def fingerprint_of(data: dict[str, Any]) -> dict[str, Any]:
    """The harness fingerprint fields pytest-benchmark's machine_info can fill."""
    mi = data.get("machine_info") or {}
    cpu = mi.get("cpu") or {}
    ci = data.get("commit_info") or {}
    fp: dict[str, Any] = {
        "cpu_model": cpu.get("brand_raw") or mi.get("processor") or mi.get("machine"),
        "cpu_count": cpu.get("count"),
        "cpu_freq_mhz": None,
        "governor": None,
        "machine": mi.get("machine"),
        "kernel": mi.get("release"),
        "os": mi.get("system"),
        "python": mi.get("python_version"),
        "numpy": None,
        "git": {"commit": ci.get("id"), "dirty": ci.get("dirty")},
    }
    fp["machine_id"] = machine_key(fp)
    return fp


def bench_row(bench: dict[str, Any], run_id: str) -> ResultRow:
    info = bench.get("extra_info") or {}
    stats = bench.get("stats") or {}
    samples = tuple(float(x) for x in stats.get("data") or ())
    median = stats.get("median")
    summary = summarize(samples).to_dict() if samples else \
        {k: stats.get(k) for k in ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3",
                                   "rounds")}
    return ResultRow(
        run_id=run_id, workload=str(info.get("workload") or bench.get("name", "?")),
        strategy=str(info.get("strategy") or SOURCE), runtime=str(info.get("runtime") or "-"),
        status="ok", median_s=float(median) if median is not None else None,
        samples_s=samples, inner=int(stats.get("iterations") or 1),
        flops=int(info.get("flops") or 0),
        compulsory_bytes=int(info.get("compulsory_bytes") or 0),
        bytes_copied_per_run=info.get("bytes_copied_per_run"),
        calls_per_run=info.get("calls_per_run"),
        max_abs_err=info.get("max_abs_err"),
        runtime_info={"version": info.get("runtime_version")} if info.get("runtime_version")
        else {},
        metrics={"source": SOURCE, "name": bench.get("fullname") or bench.get("name"),
                 "raw_samples": bool(samples)},
        settings={"source": SOURCE, **(bench.get("options") or {})},
        timing={"inner": int(stats.get("iterations") or 1), "rounds": stats.get("rounds")},
        stats=summary)


def import_pytest_benchmark(path: Path, out: Path) -> Path:
    """Write a run directory under `out` from pytest-benchmark JSON at `path`; return it."""
    data = _load(path)
    stamp = _dt.datetime.now(_dt.timezone.utc)
    run_id = stamp.strftime("%Y%m%d-%H%M%S-pytest-benchmark")
    run_dir = prepare_run_dir(out, run_id)
    rows = [bench_row(b, run_id) for b in data["benchmarks"]]
    with ResultsWriter(run_dir / RESULTS) as w:
        for row in rows:
            w.append(row)
    manifest = {
        "run_id": run_id, "created": stamp.isoformat(timespec="seconds"),
        "source": {"tool": SOURCE, "version": data.get("version"), "file": str(path),
                   "datetime": data.get("datetime")},
        "suite": None, "settings": {}, "cells_planned": len(rows), "cells_done": len(rows),
        "fingerprint": fingerprint_of(data), "runtimes": {}, "status": "complete",
        "warnings": [f"{sum(not r.samples_s for r in rows)} benchmarks have no raw data "
                     "(save with --benchmark-save-data or --benchmark-json)"]
        if any(not r.samples_s for r in rows) else [],
    }
    write_json_atomic(run_dir / MANIFEST, manifest)
    return run_dir

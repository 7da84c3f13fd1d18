"""`membench import-pytest-benchmark`: pytest-benchmark JSON round-trips into a harness run."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from harness.analysis.compare import compare_runs
from harness.cli import main
from harness.probes.fingerprint import cpu_model, fingerprint
from harness.store.manifest import read_manifest
from harness.store.rows import read_rows


def _bench(workload: str, strategy: str, data: list[float], raw: bool = True) -> dict:
    stats = {"min": min(data), "max": max(data), "mean": float(np.mean(data)),
             "stddev": float(np.std(data, ddof=1)), "median": float(np.median(data)),
             "rounds": len(data), "iterations": 3, "iqr": 0.0, "q1": 0.0, "q3": 0.0}
    if raw:
        stats["data"] = data
    return {"group": workload, "name": f"test_inference[{workload}]",
            "fullname": f"benchmarks/test_quick_suite.py::test_inference[{workload}]",
            "params": None, "options": {"timer": "perf_counter", "min_rounds": 5},
            "extra_info": {"workload": workload, "strategy": strategy, "runtime": "wasmtime",
                           "flops": 1000, "bytes_copied_per_run": 0},
            "stats": stats}


def _file(tmp_path: Path, benches: list[dict]) -> Path:
    fp = fingerprint(probe_noise=False)
    doc = {"machine_info": {"machine": fp["machine"], "system": fp["os"],
                            "release": fp["kernel"], "python_version": fp["python"],
                            "cpu": {"brand_raw": cpu_model(), "count": fp["cpu_count"]}},
           "commit_info": {"id": "abc123", "dirty": False}, "benchmarks": benches,
           "datetime": "2026-01-01T00:00:00", "version": "5.1.0"}
    path = tmp_path / "0001_run.json"
    path.write_text(json.dumps(doc))
    return path


def test_import_round_trips_into_rows_and_compare(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    a = list(rng.normal(1e-3, 1e-5, 40))
    b = list(rng.normal(1e-3, 1e-5, 40))
    path = _file(tmp_path, [_bench("gemm:m=8", "shared", a), _bench("gemm:m=8", "per-module", b),
                            _bench("bias-relu", "shared", [2e-3, 2.1e-3], raw=False)])
    assert main(["import-pytest-benchmark", str(path), "--out", str(tmp_path / "res")]) == 0
    (run_dir,) = (tmp_path / "res").iterdir()
    rows = read_rows(run_dir)
    assert [(r.workload, r.strategy, r.runtime) for r in rows] == [
        ("gemm:m=8", "shared", "wasmtime"), ("gemm:m=8", "per-module", "wasmtime"),
        ("bias-relu", "shared", "wasmtime")]
    assert rows[0].samples_s == tuple(a) and rows[0].median_s == np.median(a)
    assert rows[0].inner == 3 and rows[0].stats["n"] == 40 and rows[0].flops == 1000
    assert rows[2].samples_s == () and rows[2].median_s == np.median([2e-3, 2.1e-3])
    manifest = read_manifest(run_dir)
    # same machine as the harness's own runs: compare accepts them without a flag
    assert manifest["fingerprint"]["machine_id"] == fingerprint(probe_noise=False)["machine_id"]
    assert manifest["fingerprint"]["git"] == {"commit": "abc123", "dirty": False}
    assert "no raw data" in manifest["warnings"][0]
    cmp = compare_runs(rows, rows)
    assert [c.verdict for c in cmp.cells] == ["unchanged", "unchanged"]
    # no raw samples: listed as not comparable, never given a verdict
    assert [k for k, *_ in cmp.not_comparable] == [("bias-relu", "shared", "wasmtime")]
    assert "gemm:m=8" in capsys.readouterr().out


def test_import_refuses_what_is_not_pytest_benchmark(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"results": []}')
    assert main(["import-pytest-benchmark", str(bad), "--out", str(tmp_path / "r")]) == 2
    assert "not a pytest-benchmark JSON file" in capsys.readouterr().err


def test_the_projects_own_pytest_benchmarks_run_and_import(tmp_path: Path) -> None:
    """`pytest benchmarks --benchmark-only` passes (cells a runtime cannot run are skipped
    with the reason, as a worker would report them), and its JSON imports into a run."""
    import subprocess
    import sys

    from harness.runtimes.venvs import REPO_ROOT

    out = tmp_path / "bench.json"
    # a session of its own: under `pytest -n`, xdist's variables would make pytest-benchmark
    # believe it runs distributed (and disable timing)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "benchmarks",
         "--benchmark-only", "--benchmark-min-rounds=2", "--benchmark-max-time=0.0001",
         "--benchmark-warmup=off", f"--benchmark-json={out}"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "unsupported: wasm3 lacks simd128" in proc.stdout
    assert main(["import-pytest-benchmark", str(out), "--out", str(tmp_path / "res")]) == 0
    (run_dir,) = (tmp_path / "res").iterdir()
    rows = read_rows(run_dir)
    assert {r.runtime for r in rows} >= {"wasmtime"} and all(r.samples_s for r in rows)

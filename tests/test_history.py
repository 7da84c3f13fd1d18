"""`membench history` and step detection; `membench merge`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.analysis.history import (
    CellHistory,
    RunPoint,
    detect_steps,
    load_history,
    piecewise_constant,
)
from harness.cli import main
from harness.store.merge import merge_runs
from harness.store.rows import read_rows
from tests.runfactory import make_run


def _hist(values: list[float]) -> CellHistory:
    return CellHistory("m", ("w", "s", "r"),
                       [RunPoint(f"r{i:04d}", f"t{i:04d}", f"c{i}", "1", v)
                        for i, v in enumerate(values)])


def test_piecewise_constant_finds_planted_steps() -> None:
    rng = np.random.default_rng(0)
    y = np.concatenate([np.full(30, 0.0), np.full(30, 0.3), np.full(40, 0.1)])
    y = y + rng.normal(0, 0.01, y.size)
    assert piecewise_constant(y) == [30, 60]


def test_noise_alone_has_no_step() -> None:
    rng = np.random.default_rng(1)
    values = list(1e-3 * (1 + 0.01 * rng.standard_normal(200)))
    assert detect_steps(_hist(values)) == []


def test_step_up_reported_step_down_not() -> None:
    rng = np.random.default_rng(2)
    base = 1e-3 * (1 + 0.01 * rng.standard_normal(60))
    values = list(base[:20]) + list(base[20:40] * 1.10) + list(base[40:] * 0.9)
    steps = detect_steps(_hist(values), threshold=0.05)
    assert [s.index for s in steps] == [20]
    assert steps[0].ratio == pytest.approx(1.10, rel=0.02) and steps[0].run_id == "r0020"
    assert detect_steps(_hist(values), threshold=0.15) == []


def test_history_over_many_runs(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(3)
    for i in range(120):
        level = 1.0 if i < 80 else 1.25
        make_run(tmp_path, f"run{i:04d}",
                 {("gemm", "shared", "wasmtime"): list(level * 1e-3 * (1 + 0.01 * rng.standard_normal(5))),
                  ("gemm", "shared", "v8"): list(2e-3 * (1 + 0.01 * rng.standard_normal(5)))},
                 commit=f"c{i}", created=f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}")
    (tmp_path / "not-a-run").mkdir()
    cells, nruns = load_history(tmp_path)
    assert nruns == 120 and len(cells) == 2
    assert main(["history", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run0080" in out and "+25" in out
    assert len(list((tmp_path / "history").glob("*.png"))) == 2


def test_merge_shards(tmp_path: Path) -> None:
    a = make_run(tmp_path, "a", {("w1", "s", "r"): [1.0, 1.1]}, extra={"shard": {"index": 1, "count": 2}})
    b = make_run(tmp_path, "b", {("w2", "s", "r"): [2.0, 2.1]}, extra={"shard": {"index": 2, "count": 2}})
    merged = merge_runs([a, b], tmp_path / "out")
    rows = read_rows(merged)
    assert sorted(r.workload for r in rows) == ["w1", "w2"]
    assert {r.run_id for r in rows} == {merged.name}
    manifest = json.loads((merged / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["cells_done"] == 2


@pytest.mark.parametrize("kw, msg", [({"machine": "m2"}, "differ in machine"),
                                     ({"commit": "other"}, "differ in commit"),
                                     ({"suite": "default"}, "differ in suite")])
def test_merge_refuses_mismatch(tmp_path: Path, capsys, kw, msg) -> None:
    a = make_run(tmp_path, "a", {("w1", "s", "r"): [1.0]})
    b = make_run(tmp_path, "b", {("w2", "s", "r"): [2.0]}, **kw)
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "o")]) == 2
    assert msg in capsys.readouterr().err
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "o"), "--allow-mixed"]) == 0


def test_merge_refuses_overlapping_shards(tmp_path: Path, capsys) -> None:
    a = make_run(tmp_path, "a", {("w1", "s", "r"): [1.0]})
    b = make_run(tmp_path, "b", {("w1", "s", "r"): [2.0]})
    assert main(["merge", str(a), str(b), "--out", str(tmp_path / "o")]) == 2
    assert "shards must partition" in capsys.readouterr().err


def test_run_shards_then_merge_equals_whole_suite(tmp_path: Path) -> None:
    args = ["--workload", "bias-relu:n=64", "--workload", "gemm:m=3,n=4,k=5",
            "--strategy", "shared", "--strategy", "per-module", "--repeat", "2",
            "--sample-time", "0.0005", "--rounds", "1", "--no-calibration", "--no-report"]
    for i in (1, 2, 3):
        assert main(["run", *args, "--shard", f"{i}/3", "--out", str(tmp_path / "shards")]) == 0
    shards = sorted((tmp_path / "shards").iterdir())
    manifests = [json.loads((d / "run.json").read_text()) for d in shards]
    assert sorted(m["shard"]["index"] for m in manifests) == [1, 2, 3]
    merged = merge_runs(shards, tmp_path / "merged")
    cells = sorted((r.workload, r.strategy) for r in read_rows(merged))
    assert cells == sorted((w, s) for w in ("bias-relu:n=64", "gemm:m=3,n=4,k=5")
                           for s in ("shared", "per-module"))


def test_history_reads_final_cell_rows_not_round_rows(tmp_path: Path) -> None:
    from harness.store.rows import ResultRow, ResultsWriter

    run = make_run(tmp_path, "r1", {("gemm", "shared", "wasmtime"): [2e-3, 2e-3, 2e-3]})
    with ResultsWriter(run / "results.jsonl") as w:  # a round row of the same cell, far off
        w.append(ResultRow(run_id="r1", workload="gemm", strategy="shared", runtime="wasmtime",
                           status="ok", kind="round", round=0, samples_s=(9.0, 9.0)))
    (cell,), _ = load_history(tmp_path)
    assert [p.median_s for p in cell.points] == [2e-3]

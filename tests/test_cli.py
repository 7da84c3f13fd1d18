"""The `membench` command: exit codes, messages, files written."""

from __future__ import annotations

import json
from pathlib import Path

from harness.cli import main
from harness.results import KINDS, read_rows


def test_run_writes_results_and_manifest(tmp_path: Path, capsys) -> None:
    code = main(["run", "--workload", "gemm:m=5,n=7,k=3", "--strategy", "shared",
                 "--strategy", "per-module", "--runtime", "wasmtime", "--out", str(tmp_path),
                 "--repeat", "3", "--sample-time", "0.0005", "--rounds", "2",
                 "--order-seed", "7"])
    assert code == 0
    (run_dir,) = list(tmp_path.iterdir())
    rows = read_rows(run_dir, kinds=("baseline", "noop", "cell"))
    assert [(r.kind, r.status) for r in rows] == [("baseline", "ok"), ("noop", "ok"),
                                                  ("cell", "ok"), ("cell", "ok")]
    for r in rows[1:]:  # two rounds of three samples each, all kept
        assert len(r.samples_s) == 6 and [x["round"] for x in r.rounds] == [0, 1]
        assert r.kind == "noop" or r.overhead_s == rows[1].median_s
    assert "peak_rss_over_baseline" in rows[2].memory
    assert read_rows(run_dir) == rows[2:]
    every = read_rows(run_dir, kinds=KINDS)
    assert sum(r.kind == "round" for r in every) == 3 * 2
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    for key in ("run_id", "workload", "strategy", "runtime", "status", "reason", "phases",
                "samples_s", "median_s", "bytes_copied_per_run", "host_calls_per_run",
                "max_abs_err"):
        assert key in first
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["cells_done"] == 2
    assert manifest["schedule"]["order_seed"] == 7 and len(manifest["schedule"]["orders"]) == 2
    assert manifest["fingerprint"]["cpu_count"] and "commit" in manifest["fingerprint"]["git"]
    assert manifest["runtimes"]["wasmtime"]["capabilities"]["multi-memory"]["ok"] is True
    out = capsys.readouterr().out
    assert "gemm:m=5,n=7,k=3" in out and "per-module" in out


def test_list_names_every_plugin(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gemm", "bias-relu", "mlp", "shared", "per-module", "wasmtime", "quick"):
        assert name in out

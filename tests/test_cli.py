"""The `membench` command: exit codes, messages, files written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.errors import SpecError
from harness.store.rows import KINDS, read_rows


def test_run_writes_results_and_manifest(tmp_path: Path, capsys) -> None:
    code = main(["run", "--workload", "gemm:m=5,n=7,k=3", "--strategy", "shared",
                 "--strategy", "per-module", "--runtime", "wasmtime", "--out", str(tmp_path),
                 "--repeat", "3", "--sample-time", "0.0005", "--rounds", "2",
                 "--order-seed", "7", "--pin", "auto"])
    assert code == 0
    (run_dir,) = list(tmp_path.iterdir())
    rows = read_rows(run_dir, kinds=("baseline", "noop", "cell"))
    assert [(r.kind, r.status) for r in rows] == [("baseline", "ok"), ("noop", "ok"),
                                                  ("cell", "ok"), ("cell", "ok")]
    for r in rows[1:]:  # two rounds of three samples each, all kept
        assert len(r.samples_s) == 6 and [x["round"] for x in r.rounds] == [0, 1]
        assert r.kind == "noop" or r.overhead_s == rows[1].median_s
    # the two strategies shared a worker: each has what its load added, the group its peak
    assert rows[2].memory["rss_load_delta"] > 0
    assert "group_peak_rss_over_baseline" in rows[2].memory
    assert "peak_rss_over_baseline" not in rows[2].memory
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
    # --pin auto: every worker on the highest CPU this process may use, and run.json says so
    cpu = max(os.sched_getaffinity(0))
    assert manifest["pin"] == [cpu] and "host_interference" in manifest
    assert all(info["affinity"] == [cpu] for r in rows[1:] for info in r.rounds)
    out = capsys.readouterr().out
    assert "gemm:m=5,n=7,k=3" in out and "per-module" in out


def test_list_names_every_plugin(capsys) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("gemm", "bias-relu", "mlp", "shared", "per-module", "wasmtime", "quick"):
        assert name in out


@pytest.mark.parametrize(("text", "error"), [
    ("0-x", "expected CPU numbers"), ("x", "expected CPU numbers"),
    ("4096", "not available; this process may use"), ("", None)])
def test_pin_is_checked_before_any_work(text: str, error: str | None) -> None:
    from harness.cli.run_cmd import parse_pin

    if error is None:
        assert parse_pin(text) == ()
        return
    with pytest.raises(SpecError, match=error):
        parse_pin(text)


def test_pin_auto_and_ranges() -> None:
    from harness.cli.run_cmd import parse_pin

    allowed = sorted(os.sched_getaffinity(0))
    assert parse_pin("auto") == parse_pin(" AUTO ") == (allowed[-1],)
    assert parse_pin(f"{allowed[0]}-{allowed[-1]}") == tuple(allowed)
    assert parse_pin(",".join(map(str, reversed(allowed)))) == tuple(allowed)

"""Safe by default: private, removed worker temp dirs; no environment secrets in output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.probes.probe import probe_runtime
from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.runtimes.base import Runtime


class _SpyRuntime(Runtime):
    """A worker that records where its request lives and how that directory is protected,
    then behaves as told (hangs, or exits without a result)."""

    NAME = "spy"

    def __init__(self, log: Path, then: str) -> None:
        super().__init__()
        self.code = ("import os, sys, time; d = os.path.dirname(sys.argv[1]); "
                     f"open({str(log)!r}, 'a').write(d + ' ' + oct(os.stat(d).st_mode & 0o777)"
                     " + ' ' + ','.join(sorted(os.listdir(d))) + chr(10)); " + then)

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-c", self.code]


@pytest.mark.parametrize("then, status", [("time.sleep(30)", "timeout"), ("pass", "crashed")])
def test_worker_temp_dir_is_private_and_removed(regs, quick_settings, tmp_path, then,
                                                status) -> None:
    log = tmp_path / "seen.txt"
    rt = _SpyRuntime(log, then)
    cell = Cell(regs.workloads.create("bias-relu:n=16"), regs.strategies.create("shared"), rt)
    row = run_cell(cell, "t", quick_settings, 1.5)
    assert row.status == status
    probe_runtime(rt, timeout_s=1.5)
    seen = [line.split(" ") for line in log.read_text().splitlines()]
    assert len(seen) == 2  # the cell's worker and the probe's
    for directory, mode, files in seen:
        assert mode == "0o700"  # nobody else can read the plan, tensors or outputs
        assert "request.json" in files.split(",")
        assert not Path(directory).exists()  # removed, even after a kill


def test_no_environment_secret_in_any_output(tmp_path, monkeypatch) -> None:
    """Results, manifest, report, CSVs and compare output carry no environment values."""
    secret = "membench-canary-5f3a9c1e77d04b2c"
    for var in ("MEMBENCH_FAKE_SECRET", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"):
        monkeypatch.setenv(var, secret)
    out = tmp_path / "out"
    assert main(["run", "--workload", "bias-relu:n=16", "--strategy", "shared", "--out",
                 str(out), "--rounds", "1", "--repeat", "2", "--sample-time", "0.0005"]) == 0
    (run_dir,) = out.iterdir()
    assert main(["compare", str(run_dir), str(run_dir), "--out", str(tmp_path / "cmp")]) in (0, 1)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"results.jsonl", "run.json", "report.html", "compare.html"} <= names
    for p in files:
        assert secret.encode() not in p.read_bytes(), p


HOSTILE = "<img src=x onerror=alert(1)>\"'><script>alert(2)</script>"


def test_report_and_compare_html_escape_every_input_string(tmp_path) -> None:
    """Names, reasons, versions and fingerprint values that came from input are escaped."""
    import json

    from harness.store.rows import ResultRow, ResultsWriter
    from reports.build import write_report

    run = tmp_path / "run"
    run.mkdir()
    with ResultsWriter(run / "results.jsonl") as w:
        for i, status in enumerate(("ok", "crashed", "ok", "unsupported")):
            w.append(ResultRow(
                run_id="r", workload=f"w{i % 2}{HOSTILE}", strategy=f"s{i // 2}{HOSTILE}",
                runtime=f"rt{HOSTILE}", status=status,
                reason="" if status == "ok" else f"{status}: {HOSTILE}",
                median_s=1e-3 if status == "ok" else None,
                samples_s=(1e-3, 1.1e-3, 0.9e-3) if status == "ok" else (),
                runtime_info={"version": HOSTILE}, metrics={"note": HOSTILE}))
    (run / "run.json").write_text(json.dumps({
        "run_id": f"r{HOSTILE}", "created": "2026-01-01T00:00:00", "suite": HOSTILE,
        "status": "complete", "cells_planned": 4, "warnings": [HOSTILE],
        "fingerprint": {"cpu_model": HOSTILE, "machine_id": "m", "kernel": HOSTILE,
                        "git": {"commit": HOSTILE, "dirty": False}},
        "runtimes": {f"rt{HOSTILE}": {"status": "ok", "version": HOSTILE, "capabilities": {
            "multi-memory": {"ok": False, "detail": HOSTILE}}}}}))
    pages = [write_report(run).html.read_text()]
    assert main(["compare", str(run), str(run), "--out", str(tmp_path / "cmp")]) in (0, 1)
    pages.append((tmp_path / "cmp" / "compare.html").read_text())
    for page in pages:
        assert "<img src=x" not in page and "<script>alert" not in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page  # shown, as text

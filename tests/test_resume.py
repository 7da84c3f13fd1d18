"""Durability and resume: kill -9 mid-run loses no finished row and resume completes the
run with every cell once; Ctrl-C stops after the current cell (twice: at once) with 130."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from harness.cli import main
from harness.store.rows import KINDS, RESULTS, ResultRow, ResultsWriter, iter_rows, read_rows

CELLS = ["--workload", "bias-relu:n=16", "--workload", "gemm:m=3,n=4,k=5",
         "--strategy", "shared", "--strategy", "per-module", "--runtime", "wasmtime"]
QUICK = ["--repeat", "2", "--sample-time", "0.0005", "--warmup-max", "0.01"]


def _start(out: Path, *extra: str) -> subprocess.Popen[str]:
    # its temporary files go beside `out`: a harness killed with SIGKILL cannot remove them
    tmp = out.with_name(out.name + "-tmp")
    tmp.mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "harness", "run", "--out", str(out),
                             *CELLS, *QUICK, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})


def _wait_for_lines(out: Path, n: int, proc: subprocess.Popen[str], limit: float = 120) -> Path:
    """The run directory, once its results file has at least `n` lines."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for f in out.glob(f"*/{RESULTS}"):
            if f.read_bytes().count(b"\n") >= n:
                return f.parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {n} rows after {limit} s")


def _workers_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _assert_gone(procs: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert all(p.status() == psutil.STATUS_ZOMBIE for p in alive), alive


def _check_complete(run_dir: Path, cells: int, rounds: int) -> list[ResultRow]:
    rows = read_rows(run_dir, kinds=KINDS)
    finals = Counter((r.workload, r.strategy, r.runtime) for r in rows if r.kind == "cell")
    assert len(finals) == cells and set(finals.values()) == {1}  # every cell, once
    per_round = Counter((r.workload, r.strategy, r.round) for r in rows if r.kind == "round")
    assert set(per_round.values()) == {1}  # no round run twice
    assert len(per_round) == (cells + 1) * rounds  # every round of every cell and the noop
    assert Counter(r.kind for r in rows)["baseline"] == 1
    assert all(r.status == "ok" for r in rows if r.kind == "cell")
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["cells_done"] == cells
    return rows


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--rounds", "2")
    run_dir = _wait_for_lines(tmp_path, 5, proc)  # baseline and a few rounds are on disk
    workers = _workers_of(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    _assert_gone(workers)  # the kernel killed the running worker with its harness
    before = (run_dir / RESULTS).read_bytes()
    lines = before.decode().splitlines()
    assert len(lines) >= 5 and all(json.loads(ln) for ln in lines)  # every finished row, valid
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"

    assert main(["run", "--resume", str(run_dir), "--no-report"]) == 0
    after = (run_dir / RESULTS).read_bytes()
    assert after.startswith(before)  # what was written stays as it was
    _check_complete(run_dir, cells=4, rounds=2)
    assert len(json.loads((run_dir / "run.json").read_text())["resumed"]) == 1


def test_sigint_stops_after_the_current_cell_with_130(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--rounds", "1")
    run_dir = _wait_for_lines(tmp_path, 1, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "stopping after the current cell" in err
    assert f"finish with: membench run --resume {run_dir}" in err
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "interrupted"
    done = [r for r in iter_rows(run_dir / RESULTS)]
    assert done and all(r["status"] == "ok" for r in done)  # the cell under way finished
    assert manifest["cells_done"] < 4
    # the report of what finished was written
    assert f"report: {run_dir / 'report.html'}" in err and (run_dir / "report.html").is_file()
    assert main(["run", "--resume", str(run_dir), "--no-report"]) == 0  # the rest can follow
    _check_complete(run_dir, cells=4, rounds=1)


@pytest.mark.parametrize(("signals", "status"), [
    ((signal.SIGINT, signal.SIGINT), 130),  # Ctrl-C twice
    ((signal.SIGTERM,), 143),  # kill, timeout, a CI job cancelled
], ids=["second-sigint", "sigterm"])
def test_stop_at_once(tmp_path: Path, signals: tuple[int, ...], status: int) -> None:
    """A cell that would measure for minutes: two Ctrl-Cs, or one SIGTERM, end the run now,
    kill its worker, remove the cell's temporary files and mark the run interrupted."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--out", str(out),
                             "--workload", "bias-relu:n=16", "--rounds", "1", "--repeat", "100",
                             "--sample-time", "2", "--no-calibration", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(tmp)})
    deadline = time.monotonic() + 120
    workers: list[psutil.Process] = []
    while not workers:  # a cell worker (not the probe) is running
        assert time.monotonic() < deadline and proc.poll() is None
        manifests = list(out.glob("*/run.json"))  # probes done, cells scheduled
        started = bool(manifests) and '"schedule":' in manifests[0].read_text()
        workers = [p for p in _workers_of(proc.pid)
                   if started and any("harness.worker" in a for a in _cmdline(p))]
        time.sleep(0.1)
    assert list(tmp.glob("membench-group-*"))  # the running comparison group's files
    for i, signum in enumerate(signals):
        if i:
            time.sleep(0.5)
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)  # not the 200 s the cell would take
    assert proc.returncode == status, err
    _assert_gone(workers)
    assert not list(tmp.iterdir()), err
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted", err


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_writer_repairs_an_unfinished_last_line(tmp_path: Path) -> None:
    path = tmp_path / RESULTS
    row = ResultRow(run_id="r", workload="w", strategy="s", runtime="rt", status="ok")
    with ResultsWriter(path) as w:
        w.append(row)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"run_id": "r", "wor')  # killed mid-write
    with pytest.warns(UserWarning, match="removed an unfinished last line"), \
            ResultsWriter(path) as w:
        w.append(row)
    assert path.read_bytes() == whole * 2
    path.write_bytes(whole.rstrip(b"\n"))  # a whole row that lost only its newline
    with ResultsWriter(path) as w:
        w.append(row)
    assert path.read_bytes() == whole * 2


def test_one_writer_per_results_file(tmp_path: Path) -> None:
    with ResultsWriter(tmp_path / RESULTS), pytest.raises(Exception, match="another membench"):
        ResultsWriter(tmp_path / RESULTS)


def test_resume_refuses_options_and_non_runs(tmp_path: Path, capsys) -> None:
    assert main(["run", "--resume", str(tmp_path), "--workload", "gemm"]) == 2
    assert "drop --workload" in capsys.readouterr().err
    # a resumed run writes into RUN_DIR: an --out elsewhere would be silently ignored
    assert main(["run", "--resume", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "drop --out" in capsys.readouterr().err
    assert main(["run", "--resume", str(tmp_path / "nope")]) == 2
    assert "no run directory" in capsys.readouterr().err
    (tmp_path / "run.json").write_text('{"run_id": "old"}')
    assert main(["run", "--resume", str(tmp_path)]) == 2
    assert "records no request" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["run.json"]


def test_resume_of_a_run_being_written_touches_nothing(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    manifest = json.dumps({"run_id": "run", "status": "running", "request": {
        "cells": [["bias-relu:n=16", "shared", "wasmtime"]], "settings": {},
        "cell_timeout": 60}})
    (run / "run.json").write_text(manifest)
    with ResultsWriter(run / RESULTS):  # another membench is appending to this run
        assert main(["run", "--resume", str(run), "--no-report"]) == 2
    assert "being written by another membench process" in capsys.readouterr().err
    assert (run / "run.json").read_text() == manifest


def test_ctrl_c_while_probing_marks_the_run_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--out", str(tmp_path),
                             "--workload", "bias-relu:n=16", "--no-report"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*/run.json")) or not _workers_of(proc.pid):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    if '"schedule":' in next(tmp_path.glob("*/run.json")).read_text():
        pytest.skip("probing finished before the test could interrupt it")
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "interrupted"


def test_a_stop_in_progress_is_not_interrupted_by_a_repeated_signal() -> None:
    """After the first SIGTERM (or the second Ctrl-C) raises, further signals are ignored
    until the run's handlers are restored, so the cleanup on the way out finishes."""
    from harness.run.interrupt import STOP_NOW, GracefulStop, Terminated

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, *STOP_NOW)}
    with GracefulStop() as stop:
        with pytest.raises(Terminated):
            stop._terminate(signal.SIGTERM, None)
        assert all(signal.getsignal(s) == signal.SIG_IGN for s in before)
    assert {s: signal.getsignal(s) for s in before} == before
    with GracefulStop() as stop:
        stop._handle(signal.SIGINT, None)  # the first Ctrl-C only asks
        assert signal.getsignal(signal.SIGINT) != signal.SIG_IGN
        with pytest.raises(KeyboardInterrupt):
            stop._handle(signal.SIGINT, None)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert {s: signal.getsignal(s) for s in before} == before


@pytest.mark.parametrize(("script", "grace", "killed"), [
    ("import time; time.sleep(60)", 10.0, False),  # default SIGTERM: exits at once
    ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
     0.5, True),  # ignores it: SIGKILL after the grace period
])
def test_other_checkouts_membench_is_asked_to_stop_first(tmp_path: Path, script: str,
                                                         grace: float, killed: bool) -> None:
    from harness.run.external import ExternalRun, stop_external_cell

    proc = subprocess.Popen([sys.executable, "-c", script])
    time.sleep(0.3)  # let it install its handler
    ext = ExternalRun(None, "r", 0, 60.0, tmp_path, proc, time.perf_counter())  # type: ignore[arg-type]
    t0 = time.monotonic()
    stop_external_cell(ext, grace_s=grace)
    assert proc.returncode == (-signal.SIGKILL if killed else -signal.SIGTERM)
    assert time.monotonic() - t0 < grace + 5

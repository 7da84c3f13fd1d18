"""Safe by default: private, removed worker temp dirs; no environment secrets in output."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.cell import Cell, run_cell
from harness.probe import probe_runtime
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

"""Running one cell with another checkout's installation (`membench ab --a-repo DIR`).

To A/B two versions of the harness itself (the base and the head of a pull request), each
side's cells must be planned, generated and executed by that side's own code. The other
checkout is driven only through its public `membench run` command, so any commit that has
`membench run` can be a side.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import MembenchError
from harness.measure import MeasureSettings
from harness.results import RESULTS, ResultRow

if TYPE_CHECKING:
    from harness.cell import Cell


def membench_of(repo: Path) -> Path:
    exe = Path(repo) / ".venv" / "bin" / "membench"
    if not exe.exists():
        raise MembenchError(f"{repo} has no installed membench ({exe} missing): "
                            f"run `make env` there first")
    return exe


def run_external_cell(cell: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
                      round_index: int | None = None) -> ResultRow:
    """One round of `cell` run by `cell.repo`'s membench; its row, re-labelled for this run.

    The other checkout runs exactly one round without calibration cells; this run's
    schedule decides when, so both sides' rounds interleave.
    """
    repo = Path(cell.repo or ".")
    workload, strategy, runtime = cell.workload.spec, cell.strategy.spec, cell.runtime.spec
    side = cell.side
    exe = membench_of(repo)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="membench-ext-") as tmp:
        cmd = [str(exe), "run", "--workload", workload, "--strategy", strategy,
               "--runtime", runtime, "--out", tmp, "--repeat", str(settings.samples),
               "--sample-time", str(settings.sample_s), "--seed", str(settings.seed),
               "--cell-timeout", str(timeout_s), "--rounds", "1", "--no-calibration"]
        try:
            proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True,
                                  timeout=timeout_s * 2 + 120)
        except subprocess.TimeoutExpired:
            return ResultRow(run_id=run_id, workload=workload, strategy=strategy,
                             runtime=runtime, side=side, status="timeout", round=round_index,
                             kind="cell" if round_index is None else "round",
                             reason=f"{repo}'s membench did not finish",
                             wall_s=time.perf_counter() - t0)
        files = list(Path(tmp).glob(f"*/{RESULTS}"))
        rows = [json.loads(line) for f in files
                for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    cells = [r for r in rows if r.get("kind", "cell") == "cell"]
    if proc.returncode != 0 or len(cells) != 1:
        tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-2:])
        return ResultRow(run_id=run_id, workload=workload, strategy=strategy, runtime=runtime,
                         side=side, status="crashed", round=round_index,
                         kind="cell" if round_index is None else "round",
                         reason=f"{repo}'s membench exited {proc.returncode}: {tail}"[:500],
                         wall_s=time.perf_counter() - t0)
    extra: dict[str, object] = {"run_id": run_id, "side": side}
    if round_index is not None:
        extra.update(kind="round", round=round_index)
    return ResultRow.from_dict({**cells[0], **extra})

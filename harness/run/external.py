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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MembenchError
from harness.run.request import Cell
from harness.store.rows import RESULTS, ResultRow
from harness.worker.measure import MeasureSettings


def membench_of(repo: Path) -> Path:
    exe = Path(repo) / ".venv" / "bin" / "membench"
    if not exe.exists():
        raise MembenchError(f"{repo} has no installed membench ({exe} missing): "
                            f"run `make env` there first")
    return exe


def supports_lockstep(repo: Path) -> bool:
    """Whether that checkout's `membench run` can be one side of a lockstep pair."""
    # harness/lockstep.py before the house was regrouped, harness/worker/lockstep.py since
    return any((Path(repo) / "harness" / where).exists()
               for where in ("lockstep.py", "worker/lockstep.py"))


@dataclass
class ExternalRun:
    """Another checkout's `membench run` of one cell round, started and not yet waited for."""

    cell: Cell
    run_id: str
    round_index: int | None
    timeout_s: float
    tmp: Path
    proc: subprocess.Popen[bytes] | None
    t0: float
    failed: str = ""
    #: this run's settings: the row carries them (the other checkout ran one round of its
    #: own), so a resumed run recognises the round as its own
    settings: dict[str, object] | None = None


def start_external_cell(cell: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
                        tmp: Path, round_index: int | None = None, pin: Sequence[int] = (),
                        lockstep_fds: tuple[int, int] | None = None) -> ExternalRun:
    """Start `cell.repo`'s membench on one round of `cell` (results into `tmp`); with
    `lockstep_fds` its worker passes the gates of this run's lockstep pair."""
    repo = Path(cell.repo or ".")
    exe = membench_of(repo)
    cmd = [str(exe), "run", "--workload", cell.workload.spec, "--strategy", cell.strategy.spec,
           "--runtime", cell.runtime.spec, "--out", str(tmp / "out"),
           "--repeat", str(settings.samples), "--sample-time", str(settings.sample_s),
           "--seed", str(settings.seed), "--cell-timeout", str(timeout_s), "--rounds", "1",
           "--no-calibration"]
    counts = [m for m in settings.measure if m != "time"]
    if counts:   # an older checkout without --measure refuses, saying so
        cmd += ["--measure", ",".join(counts)]
    if pin:
        cmd += ["--pin", ",".join(str(c) for c in pin)]
    if lockstep_fds is not None:
        cmd += ["--lockstep-fds", f"{lockstep_fds[0]},{lockstep_fds[1]}"]
    t0 = time.perf_counter()
    with open(tmp / "stdout", "wb") as out, open(tmp / "stderr", "wb") as err:
        try:
            proc = subprocess.Popen(cmd, cwd=repo, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, pass_fds=lockstep_fds or ())
        except OSError as exc:
            return ExternalRun(cell, run_id, round_index, timeout_s, tmp, None, t0,
                               f"cannot start {exe}: {exc.strerror}", settings.to_dict())
    return ExternalRun(cell, run_id, round_index, timeout_s, tmp, proc, t0,
                       settings=settings.to_dict())


def finish_external_cell(ext: ExternalRun) -> ResultRow:
    """Wait for a started external run; its row, re-labelled for this run."""
    cell, repo = ext.cell, Path(ext.cell.repo or ".")
    workload, strategy, runtime = cell.workload.spec, cell.strategy.spec, cell.runtime.spec
    kind = "cell" if ext.round_index is None else "round"

    def failed(status: str, reason: str) -> ResultRow:
        return ResultRow(run_id=ext.run_id, workload=workload, strategy=strategy,
                         runtime=runtime, side=cell.side, status=status, round=ext.round_index,
                         kind=kind, reason=reason[:500], wall_s=time.perf_counter() - ext.t0,
                         settings=ext.settings or {})

    if ext.proc is None:
        return failed("crashed", ext.failed)
    try:
        code = ext.proc.wait(timeout=ext.timeout_s * 2 + 120)
    except subprocess.TimeoutExpired:
        stop_external_cell(ext)
        return failed("timeout", f"{repo}'s membench did not finish")
    files = list((ext.tmp / "out").glob(f"*/{RESULTS}"))
    rows = [json.loads(line) for f in files
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    cells = [r for r in rows if r.get("kind", "cell") == "cell"]
    if code != 0 or len(cells) != 1:
        text = ""
        for name in ("stderr", "stdout"):
            text = text or (ext.tmp / name).read_text(encoding="utf-8", errors="replace").strip()
        tail = " | ".join(text.splitlines()[-2:])
        return failed("crashed", f"{repo}'s membench exited {code}: {tail}")
    extra: dict[str, object] = {"run_id": ext.run_id, "side": cell.side}
    if ext.settings is not None:
        extra["settings"] = ext.settings
    if ext.round_index is not None:
        extra.update(kind="round", round=ext.round_index)
    return ResultRow.from_dict({**cells[0], **extra})


def stop_external_cell(ext: ExternalRun, grace_s: float = 10.0) -> None:
    """SIGTERM first: a membench that handles it kills its own worker and removes its files
    (a SIGKILL would orphan them); SIGKILL after `grace_s`."""
    if ext.proc is not None and ext.proc.poll() is None:
        ext.proc.terminate()
        try:
            ext.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            ext.proc.kill()
            ext.proc.wait()


def run_external_cell(cell: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
                      round_index: int | None = None, pin: Sequence[int] = ()) -> ResultRow:
    """One round of `cell` run by `cell.repo`'s membench; its row, re-labelled for this run.

    The other checkout runs exactly one round without calibration cells; this run's
    schedule decides when, so both sides' rounds interleave.
    """
    with tempfile.TemporaryDirectory(prefix="membench-ext-") as tmp:
        ext = start_external_cell(cell, run_id, settings, timeout_s, Path(tmp), round_index,
                                  pin)
        try:
            return finish_external_cell(ext)
        except BaseException:
            stop_external_cell(ext)
            raise

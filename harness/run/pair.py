"""Running the two cells of an A/B pair together, in lockstep (`harness.worker.lockstep`).

Both workers are started, pinned to one CPU; the conductor lets them set up in turn and
then take their samples alternately. A side is either a cell this harness runs in its own
worker (`LocalSide`) or one another checkout's membench runs (`ExternalSide`, for
`membench ab --a-repo/--b-repo`); both pass the same gates.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.probes.probe import ProbeResult
from harness.run.cell import PreparedCell, finish_cell, prepare_cell
from harness.run.external import (
    ExternalRun,
    finish_external_cell,
    start_external_cell,
    stop_external_cell,
)
from harness.run.request import Cell
from harness.store.rows import ResultRow
from harness.worker.launch import (
    StartedWorker,
    finish_worker,
    run_worker,
    start_worker,
    stop_worker,
)
from harness.worker.lockstep import Channel, conduct, gated
from harness.worker.measure import MeasureSettings


def pair_cpu() -> int:
    """The CPU both workers of an unpinned lockstep pair run on: the highest one this
    process may use (a pair's samples only pair if they ran on the same core)."""
    if hasattr(os, "sched_getaffinity"):
        return max(os.sched_getaffinity(0))
    return 0


def run_pair(a: Cell, b: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
             probes: tuple[ProbeResult | None, ProbeResult | None] = (None, None),
             workdir: Path | None = None, memory_limit: int | None = None,
             round_index: int | None = None, pin: Sequence[int] = (),
             ) -> tuple[ResultRow, ResultRow]:
    """One round of an A/B pair in lockstep (`harness.worker.lockstep`): both workers alive,
    set-ups in turn, samples alternating. Rows whose samples were all paired carry
    `timing["lockstep"] = True`. A side that cannot run (unsupported, unavailable) leaves
    the other to run alone, unpaired. Without `pin`, both workers are pinned to one CPU
    (`pair_cpu`). A side with a `repo` is run by that checkout's membench."""
    if not pin:  # two vCPUs of a VM can meet different interference: share one
        pin = (pair_cpu(),)
    with contextlib.ExitStack() as stack:
        sides: list[ResultRow | PairSide] = []
        for c, pr in zip((a, b), probes, strict=True):
            if c.repo is not None:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(
                    prefix="membench-ext-", dir=workdir)))
                sides.append(ExternalSide(c, run_id, settings, timeout_s, tmp, round_index,
                                          pin))
                continue
            p = prepare_cell(c, run_id, settings, pr, workdir, round_index, pin, None, None,
                             stack)
            sides.append(p if isinstance(p, ResultRow) else LocalSide(p, timeout_s,
                                                                     memory_limit))
        ready = [sd for sd in sides if not isinstance(sd, ResultRow)]
        if len(ready) < 2:  # nothing to pair with: whatever can run, runs alone
            alone = [sd if isinstance(sd, ResultRow) else sd.run_alone() for sd in sides]
            return alone[0], alone[1]
        chans = [Channel.open("AB"[i]) for i in range(2)]
        for ch in chans:
            stack.callback(ch.close)
        try:
            for sd, ch in zip(ready, chans, strict=True):
                sd.start(ch.child_fds())
                ch.started()
            # a worker stuck in one step (set-up, a sample, its teardown) is given up after
            # the cell time limit; its partner is not charged for the wait
            paired = conduct(chans[0], chans[1], settings.samples, timeout_s)
            rows = []
            for sd, ch in zip(ready, chans, strict=True):  # teardowns one at a time
                ch.release()
                rows.append(sd.finish())
        except BaseException:
            for sd in ready:
                sd.stop()
            raise
        if paired:
            rows = [dataclasses.replace(r, timing={**r.timing, "lockstep": True})
                    if r.status == "ok" else r for r in rows]
        return rows[0], rows[1]


class PairSide(abc.ABC):
    """One side of a lockstep pair: started with the gate's pipe ends, then finished."""

    @abc.abstractmethod
    def start(self, fds: tuple[int, int]) -> None: ...

    @abc.abstractmethod
    def finish(self) -> ResultRow: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def run_alone(self) -> ResultRow: ...


class LocalSide(PairSide):
    """A cell this harness runs in its own worker."""

    def __init__(self, p: PreparedCell, timeout_s: float, memory_limit: int | None) -> None:
        self.p, self.timeout_s, self.memory_limit = p, timeout_s, memory_limit
        self.worker: StartedWorker | None = None

    def start(self, fds: tuple[int, int]) -> None:
        self.worker = start_worker(self.p.cell.runtime, gated(self.p.request, fds),
                                   self.p.workdir, memory_limit=self.memory_limit,
                                   pass_fds=fds)

    def finish(self) -> ResultRow:
        assert self.worker is not None
        return finish_cell(self.p, finish_worker(self.worker, self.timeout_s))

    def stop(self) -> None:
        if self.worker is not None:
            stop_worker(self.worker)

    def run_alone(self) -> ResultRow:
        return finish_cell(self.p, run_worker(
            self.p.cell.runtime, self.p.request, self.p.workdir, self.timeout_s,
            memory_limit=self.memory_limit))


class ExternalSide(PairSide):
    """A cell another checkout's membench runs (`--a-repo`/`--b-repo`)."""

    def __init__(self, cell: Cell, run_id: str, settings: MeasureSettings, timeout_s: float,
                 tmp: Path, round_index: int | None, pin: Sequence[int]) -> None:
        self.args = (cell, run_id, settings, timeout_s, tmp, round_index, pin)
        self.ext: ExternalRun | None = None

    def start(self, fds: tuple[int, int]) -> None:
        self.ext = start_external_cell(*self.args, lockstep_fds=fds)

    def finish(self) -> ResultRow:
        assert self.ext is not None
        return finish_external_cell(self.ext)

    def stop(self) -> None:
        if self.ext is not None:
            stop_external_cell(self.ext)

    def run_alone(self) -> ResultRow:
        self.ext = start_external_cell(*self.args)
        return finish_external_cell(self.ext)

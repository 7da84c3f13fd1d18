"""Stage 3 of a run: what runs when, and what an earlier session already did.

The jobs are the calibration `noop` cells (one per runtime) followed by the run's cells.
They run in units: a comparison group (every strategy of one workload and runtime, one
worker for all) or a single cell (a noop, an A/B side). Each round runs every unfinished
unit once, a fresh worker each, in an order shuffled per round from the recorded
`order_seed` (`rounds.cell_orders`); an A/B run keeps each A cell next to its B cell and,
in lockstep, runs the two together. The `Ledger` is the run's
memory of rows: the rounds each job has, its final row, each runtime's baseline; a resumed
run starts from the rows on disk.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness.core.protocol import _default
from harness.run.external import supports_lockstep
from harness.run.pair import pair_cpu
from harness.run.request import Cell, RunRequest, group_cells
from harness.run.resume import Done
from harness.run.rounds import cell_orders, combine_rounds
from harness.store.rows import ResultRow
from harness.worker.measure import MeasureSettings


@dataclass(frozen=True)
class Schedule:
    """Jobs in run order (noops first), the units they run in, each round's order of the
    units, and lockstep partners."""

    jobs: tuple[Cell, ...]
    kinds: tuple[str, ...]                 # "noop" or "cell", per job
    settings: MeasureSettings              # the run's settings, order seed resolved
    units: tuple[tuple[int, ...], ...]     # job indices run by one worker
    grouped: tuple[bool, ...]              # per unit: a comparison group (else one cell)
    orders: tuple[tuple[int, ...], ...]    # per round, a permutation of the unit indices
    partner: dict[int, int]                # lockstep A/B: job -> its partner, both ways

    @cached_property
    def unit_of(self) -> list[int]:
        """The unit of each job."""
        out = [0] * len(self.jobs)
        for u, unit in enumerate(self.units):
            for j in unit:
                out[j] = u
        return out

    def position(self, rnd: int, j: int) -> int:
        """Where job `j`'s unit ran in round `rnd`."""
        return self.orders[rnd].index(self.unit_of[j])

    @property
    def n_noops(self) -> int:
        return self.kinds.count("noop")

    @property
    def total(self) -> int:
        return len(self.jobs) * self.settings.rounds

    def manifest(self) -> dict[str, Any]:
        return {"order_seed": self.settings.order_seed, "rounds": self.settings.rounds,
                "cells": [str(c) for c in self.jobs],
                "units": [list(u) for u in self.units], "groups": list(self.grouped),
                "orders": [list(o) for o in self.orders]}


def quick_settings(settings: MeasureSettings) -> MeasureSettings:
    """One short sample: enough for a baseline worker's memory figures."""
    return dataclasses.replace(settings, samples=1, warmup_s=0.0, warmup_max_s=0.01,
                               sample_s=0.001)


def worker_pin(req: RunRequest) -> tuple[int, ...]:
    """The CPUs every worker of the run is pinned to: `--pin`; in a lockstep run without it,
    the CPU its pairs share (`pair_cpu`), so the noop, baseline and unpaired cells are
    measured where the pairs are; otherwise none."""
    if req.pin or not req.lockstep:
        return req.pin
    return (pair_cpu(),)


def lockstep_partners(jobs: Sequence[Cell]) -> dict[int, int]:
    """A/B pairs that can run in lockstep, both ways: job index -> its partner's index.
    Cells run by another checkout's membench (`repo`) pair when that checkout has
    lockstep (`external.supports_lockstep`)."""
    sides: dict[tuple[str, str], dict[str, int]] = {}
    for j, c in enumerate(jobs):
        if c.side and (c.repo is None or supports_lockstep(c.repo)):
            sides.setdefault((c.workload.spec, c.strategy.spec), {})[c.side] = j
    out: dict[int, int] = {}
    for pair in sides.values():
        if set(pair) == {"A", "B"}:
            out[pair["A"]], out[pair["B"]] = pair["B"], pair["A"]
    return out


def make_schedule(noops: Sequence[Cell], cells: Sequence[Cell], req: RunRequest,
                  settings: MeasureSettings) -> Schedule:
    """The run's jobs and per-round orders from `settings.order_seed` (already resolved)."""
    assert settings.order_seed is not None
    jobs = (*noops, *cells)
    units: list[tuple[int, ...]] = [(j,) for j in range(len(noops))]
    grouped = [False] * len(noops)
    if req.groups and req.lockstep_fds is None:
        for g in group_cells(cells):
            units.append(tuple(len(noops) + i for i in g))
            grouped.append(cells[g[0]].groupable)
    else:
        units += [(len(noops) + i,) for i in range(len(cells))]
        grouped += [False] * len(cells)
    # an A/B run keeps each A cell next to its B cell (see `cell_orders`)
    blocks = ([(jobs[u[0]].workload.spec, jobs[u[0]].strategy.spec) if jobs[u[0]].side else n
               for n, u in enumerate(units)] if any(c.side for c in jobs) else None)
    orders = cell_orders(len(units), settings.rounds, settings.order_seed, blocks)
    return Schedule(jobs, ("noop",) * len(noops) + ("cell",) * len(cells), settings,
                    tuple(units), tuple(grouped), tuple(tuple(o) for o in orders),
                    lockstep_partners(jobs) if req.lockstep else {})


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal settings dicts, as they compare after a JSON round trip."""
    return json.loads(json.dumps(a, default=_default)) == json.loads(json.dumps(b, default=_default))


@dataclass
class Ledger:
    """The rows a run has so far, by job: its rounds (with their positions in the round's
    order), its final row; and the memory baseline per runtime."""

    schedule: Schedule
    baselines: dict[str, ResultRow] = field(default_factory=dict)
    final: dict[int, ResultRow] = field(default_factory=dict)
    # per job, sized from the schedule
    rounds_of: list[list[ResultRow]] = field(init=False)
    positions: list[list[int]] = field(init=False)
    have: list[set[int]] = field(init=False)   # rounds each job already has

    def __post_init__(self) -> None:
        n = len(self.schedule.jobs)
        self.rounds_of = [[] for _ in range(n)]
        self.positions = [[] for _ in range(n)]
        self.have = [set() for _ in range(n)]

    @classmethod
    def resumed(cls, schedule: Schedule, done: Done | None, runtimes: Sequence[str]) -> Ledger:
        """What an earlier session of this run finished with these settings; rounds a
        lockstep pair kept on one side only are dropped, to be measured again paired."""
        ledger = cls(schedule)
        if done is None:
            return ledger
        s = schedule.settings
        index = {job.run_key: j for j, job in enumerate(schedule.jobs)}
        ledger.baselines = {k: r for k, r in done.baselines.items()
                            if k in runtimes and _same(r.settings, quick_settings(s).to_dict())}
        ledger.final = {index[k]: r for k, r in done.finals.items()
                        if k in index and _same(r.settings, s.to_dict())}
        for (k, rnd), r in sorted(done.rounds.items(), key=lambda kv: kv[0][1]):
            j = index.get(k)
            if j is not None and j not in ledger.final and rnd < s.rounds \
                    and _same(r.settings, s.to_dict()):
                ledger.rounds_of[j].append(r)
                ledger.positions[j].append(schedule.position(rnd, j))
                ledger.have[j].add(rnd)
        ledger._drop_half_pairs()
        ledger._drop_half_groups()
        return ledger

    def _drop_half_pairs(self) -> None:
        """A resumed lockstep run in which a pair kept a round on one side only (the run
        died between the pair's two rows) measures that round again on both sides, paired:
        kept alone it would be compared unpaired."""
        for j, mate in self.schedule.partner.items():
            if j in self.final or mate in self.final:
                continue
            for rnd in self.have[j] - self.have[mate]:
                self._drop_round(j, rnd)

    def _drop_half_groups(self) -> None:
        """A group round that a resumed run kept for some of its unfinished cells only (the
        run died while writing the group's rows) is measured again for all of them: its
        samples pair only within one worker."""
        for u, unit in enumerate(self.schedule.units):
            if not self.schedule.grouped[u]:
                continue
            open_ = [j for j in unit if j not in self.final]
            for rnd in range(self.schedule.settings.rounds):
                kept = [j for j in open_ if rnd in self.have[j]]
                if kept and len(kept) < len(open_):
                    for j in kept:
                        self._drop_round(j, rnd)

    def _drop_round(self, j: int, rnd: int) -> None:
        i = next(i for i, r in enumerate(self.rounds_of[j]) if r.round == rnd)
        del self.rounds_of[j][i], self.positions[j][i]
        self.have[j].discard(rnd)

    def rounds_done(self) -> int:
        """Rounds (of all jobs) already measured, a failed job counting all of its rounds."""
        rounds = self.schedule.settings.rounds
        return sum(rounds if j in self.final else len(self.have[j])
                   for j in range(len(self.schedule.jobs)))

    def pending(self, j: int, rnd: int) -> bool:
        return j not in self.final and rnd not in self.have[j]

    def add_round(self, j: int, rnd: int, pos: int, row: ResultRow) -> ResultRow | None:
        """Keep one round's row; a failed round ends its job: the job's final row, folded
        from the rounds it has, is returned (the job is not run again)."""
        self.rounds_of[j].append(row)
        self.positions[j].append(pos)
        self.have[j].add(rnd)
        if row.status != "ok":
            return self.fold(j)
        return None

    def fold(self, j: int) -> ResultRow:
        """Job `j`'s final row from its rounds, remembered as final."""
        self.final[j] = combine_rounds(self.rounds_of[j], positions=self.positions[j],
                                       kind=self.schedule.kinds[j])
        return self.final[j]

    def unfinished_failures(self) -> list[int]:
        """Jobs with a failed round but no final row (the run died between the two rows)."""
        return [j for j, rows in enumerate(self.rounds_of)
                if j not in self.final and any(r.status != "ok" for r in rows)]

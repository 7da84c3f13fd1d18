"""What a run is asked to do: the plugin registries, a cell, and the `RunRequest`.

A run writes its request into `run.json` (`RunRequest.record`) and `--resume` reads the
same record back (`RunRequest.from_record`): one type, one list of fields, so a setting
added here is recorded and resumed without a second copy of it anywhere.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.plugins.registry import RUNTIMES, STRATEGIES, WORKLOADS, Registry
from harness.plugins.strategy import Strategy
from harness.plugins.workload import Workload
from harness.runtimes.base import Runtime
from harness.store.rows import CellKey
from harness.worker.measure import MeasureSettings

#: key of the recorded request in run.json
REQUEST = "request"


@dataclass(frozen=True)
class Registries:
    """The three plugin registries, passed explicitly (no module-level state)."""

    workloads: Registry[Workload]
    strategies: Registry[Strategy]
    runtimes: Registry[Runtime]

    @classmethod
    def from_entry_points(cls) -> Registries:
        return cls(Registry(WORKLOADS, "workload"), Registry(STRATEGIES, "strategy"),
                   Registry(RUNTIMES, "runtime"))


@dataclass(frozen=True)
class Cell:
    """One workload under one strategy on one runtime: the unit a worker measures."""

    workload: Workload
    strategy: Strategy
    runtime: Runtime
    #: which side of an A/B run the cell belongs to ("" outside `membench ab`)
    side: str = ""
    #: another checkout whose own `membench` runs this cell (A/B of harness versions)
    repo: Path | None = None

    @property
    def key(self) -> CellKey:
        return CellKey(self.workload.spec, self.strategy.spec, self.runtime.spec)

    @property
    def groupable(self) -> bool:
        """Whether the cell joins its workload and runtime's comparison group: not a side
        of an A/B run nor a cell of another checkout (A/B pairs runtimes or versions)."""
        return not (self.side or self.repo)

    @property
    def run_key(self) -> tuple[CellKey, str]:
        """`key` and the side: unique within a run, also in an A/A run of one spec."""
        return (self.key, self.side)

    def __str__(self) -> str:
        return str(self.key)


@dataclass(frozen=True)
class Group:
    """A comparison group: every strategy variant of one workload on one runtime, measured
    together in one worker per round, their samples interleaved (`harness.worker.group`),
    so each variant's ratio to the baseline strategy pairs sample by sample."""

    cells: tuple[Cell, ...]

    @property
    def workload(self) -> Workload:
        return self.cells[0].workload

    @property
    def runtime(self) -> Runtime:
        """The runtime whose worker runs the group: a driver twin that hosts the others'
        variants where the group holds one (`Runtime.hosts_twins`)."""
        return worker_runtime([c.runtime for c in self.cells])

    def __str__(self) -> str:
        n = len(self.cells)
        what = self.cells[0].strategy.spec if n == 1 else f"{n} strategies"
        runtimes = " + ".join(dict.fromkeys(c.runtime.spec for c in self.cells))
        return f"{self.workload.spec} | {what} | {runtimes}"


def worker_runtime(runtimes: Sequence[Runtime]) -> Runtime:
    """Of the runtimes of one group's cells, the one whose worker runs them all."""
    return next((rt for rt in runtimes if rt.hosts_twins), runtimes[0])


def group_cells(cells: Sequence[Cell]) -> list[tuple[int, ...]]:
    """Indices of `cells` by comparison group, in order of first appearance: cells of one
    workload and runtime together (the drivers of one engine count as one runtime, the
    toolchains of one workload as one workload: `Plugin.group_spec`); a cell that is not
    `groupable` stays alone."""
    groups: dict[tuple[str, str] | int, list[int]] = {}
    for i, c in enumerate(cells):
        key: tuple[str, str] | int = ((c.workload.group_spec(), c.runtime.group_spec())
                                      if c.groupable else i)
        groups.setdefault(key, []).append(i)
    return [tuple(g) for g in groups.values()]


@dataclass(frozen=True)
class RunRequest:
    workloads: tuple[str, ...]
    strategies: tuple[str, ...]
    runtimes: tuple[str, ...]
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    cell_timeout: float = 120.0
    suite: str | None = None
    max_memory: int | None = None
    pin: tuple[int, ...] = ()          # CPUs the workers are pinned to (empty: not pinned)
    calibrate: bool = True             # run the baseline and noop calibration cells
    #: seconds of the host-interference probe at the start and at the end of a run (0: none)
    interference_s: float = 0.5
    worker_memory_limit: int | None = None  # cap on each worker's data segment (bytes)
    #: seconds a cell may cost by its plan-based estimate; over it the cell is `skipped`
    cell_budget: float | None = None
    #: run the A and B cells of an A/B pair together, samples alternating (harness.worker.lockstep)
    lockstep: bool = False
    #: this run is one side of another checkout's lockstep pair: its gate's pipe ends
    lockstep_fds: tuple[int, int] | None = None
    #: measure the strategies of one workload and runtime together, as a comparison group
    #: (False: every cell in its own worker, strategy ratios unpaired)
    groups: bool = True
    #: after the cells, run the isolation probes of every strategy on every runtime
    #: (`harness.probes.isolation`): rows of kind `isolation` beside the cells
    isolation: bool = False
    #: runtime spec -> the only workloads it runs (a suite's `runtime_workloads`)
    runtime_workloads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    #: fields the record leaves out: the spec lists are rebuilt from the recorded cells,
    #: and inherited pipe ends mean nothing to a later process
    _NOT_RECORDED = ("workloads", "strategies", "runtimes", "lockstep_fds")

    def record(self, cells: Sequence[Cell]) -> dict[str, Any]:
        """The part of `run.json` that `--resume` rebuilds the run from."""
        rec: dict[str, Any] = {"cells": [list(c.key) for c in cells]}
        for f in dataclasses.fields(self):
            if f.name not in self._NOT_RECORDED:
                value = getattr(self, f.name)
                rec[f.name] = value.to_dict() if f.name == "settings" else \
                    list(value) if isinstance(value, tuple) else \
                    {k: list(v) for k, v in value.items()} if f.name == "runtime_workloads" \
                    else value
        if any(c.side for c in cells):  # an A/B run: which side each cell is, run by which checkout
            rec["sides"] = [c.side for c in cells]
            rec["repos"] = [str(c.repo.resolve()) if c.repo else None for c in cells]
        return rec

    @classmethod
    def from_record(cls, rec: dict[str, Any], regs: Registries,
                    where: str = "run.json") -> tuple[RunRequest, list[Cell]]:
        """The request and cells `record` wrote (a field missing from an older record keeps
        its default)."""
        try:
            n = len(rec["cells"])
            sides, repos = rec.get("sides") or [""] * n, rec.get("repos") or [None] * n
            if len(sides) != n or len(repos) != n:
                raise ValueError("sides or repos do not match the cells")
            cells = [Cell(regs.workloads.create(w), regs.strategies.create(s),
                          regs.runtimes.create(r), side, Path(repo) if repo else None)
                     for (w, s, r), side, repo in zip(rec["cells"], sides, repos, strict=True)]
            given: dict[str, Any] = {}
            for f in dataclasses.fields(cls):
                if f.name in cls._NOT_RECORDED or f.name not in rec:
                    continue
                value = rec[f.name]
                if f.name == "settings":
                    value = MeasureSettings.from_dict(value)
                elif f.name == "pin":
                    value = tuple(value)
                elif f.name == "extra":
                    value = dict(value)
                elif f.name == "runtime_workloads":
                    value = {k: tuple(v) for k, v in value.items()}
                given[f.name] = value
            # records from before comparison groups describe runs of one worker per cell
            given.setdefault("groups", False)
            req = cls(workloads=tuple(dict.fromkeys(c.workload.spec for c in cells)),
                      strategies=tuple(dict.fromkeys(c.strategy.spec for c in cells)),
                      runtimes=tuple(dict.fromkeys(c.runtime.spec for c in cells)), **given)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ResultsError(f"{where}: malformed request record ({exc})") from None
        return req, cells


def expand(req: RunRequest, regs: Registries) -> list[Cell]:
    """Parse every spec (failing fast on any bad one) and form the cross product; a runtime
    in `runtime_workloads` takes only its workloads (with every strategy)."""
    if not req.workloads:
        raise ResultsError("nothing to run: no workloads given (use --suite or --workload)")
    workloads = [regs.workloads.create(s) for s in req.workloads]
    strategies = [regs.strategies.create(s) for s in req.strategies]
    runtimes = [regs.runtimes.create(s) for s in req.runtimes]
    for w in workloads:  # impossible shapes are refused before any work
        w.check_limits(req.max_memory)
        w.tensors  # noqa: B018 - building tensors validates shapes
    # as the specs were written (a canonical spec may spell them otherwise)
    only = {k: set(v) for k, v in req.runtime_workloads.items()}
    return [Cell(w, s, r)
            for (w_spec, w), s, (r_spec, r) in itertools.product(
                zip(req.workloads, workloads, strict=True), strategies,
                zip(req.runtimes, runtimes, strict=True))
            if r_spec not in only or w_spec in only[r_spec]]

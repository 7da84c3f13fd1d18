"""A run, top to bottom. Each stage hands plain data to the next and never calls back:

1. expand the request into cells (`request.expand`, done by the caller, which may also
   shard them or pair them as A/B sides);
2. record the run (`run.json`: request, fingerprint, warnings) and probe host noise;
3. prepare the runtimes: capabilities, embedding overhead, call costs (`prepare`);
4. schedule: jobs, per-round orders, lockstep partners, what a resumed run has (`schedule`);
5. execute the rounds, each row appended and fsync'd as it is measured (`execute`);
6. fold the rounds into final rows; with `--measure insts`, count each cell's
   instructions under callgrind, one worker per runtime (`insts`); with `isolation`, run
   the isolation probes of every strategy on every runtime (both after the timings, which
   they would disturb); close the manifest.

The report is written from the rows by the command that started the run (`membench run`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.core.protocol import write_json_atomic
from harness.plugins.registry import WORKLOADS, Registry
from harness.plugins.workload import Workload
from harness.probes.fingerprint import command_line, fingerprint, noise_warnings
from harness.probes.isolation import PROBES, run_probe
from harness.probes.race import run_race
from harness.run.calibration import noop_cell
from harness.run.execute import ProgressFn, RoundRunner
from harness.run.interrupt import GracefulStop
from harness.run.prepare import interference_record, prepare_runtimes
from harness.run.request import REQUEST, Cell, RunRequest
from harness.run.resume import Done
from harness.run.rundir import now
from harness.run.schedule import Ledger, make_schedule, worker_pin
from harness.runtimes.agents import allowed_cpus
from harness.store.manifest import MANIFEST, read_manifest
from harness.store.rows import RESULTS, ResultRow, ResultsWriter, fold_counts


class RunManifest:
    """`run.json` while the run goes on: rewritten atomically after every stage."""

    def __init__(self, run_dir: Path, data: dict[str, Any]) -> None:
        self.path, self.data = run_dir / MANIFEST, data

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def execute(cells: Sequence[Cell], run_dir: Path, req: RunRequest,
            progress: ProgressFn | None = None, done: Done | None = None) -> list[ResultRow]:
    """Run every cell for `settings.rounds` interleaved rounds into `run_dir`; returns the
    final rows: baselines, noops, then cells in the given order.

    `done` (from `harness.run.resume`) is what an earlier session of this run already
    wrote: those baselines, rounds and final rows are kept and not run again. The first
    Ctrl-C stops after the current worker, the second at once; either way the manifest
    says `interrupted` and KeyboardInterrupt propagates.
    """
    # the results file is locked first: a run another process is writing is left untouched
    with ResultsWriter(run_dir / RESULTS) as writer, GracefulStop() as stop:
        try:
            return _stages(cells, run_dir, req, progress, done, stop, writer)
        except KeyboardInterrupt:  # also while probing, before the stages' own handler
            with contextlib.suppress(ResultsError):
                manifest = read_manifest(run_dir)
                if manifest.get("status") == "running":
                    write_json_atomic(run_dir / MANIFEST, {**manifest, "status": "interrupted"})
            raise


def concurrency_record(pin: Sequence[int]) -> dict[str, Any]:
    """Where a plan's agents run (`threads=N`): the machine's CPUs, the ones a worker may use,
    and how agents are pinned to them."""
    return {"cpu_count": os.cpu_count(), "worker_cpus": list(pin) or allowed_cpus(),
            "pinning": "agent i runs on the i-th CPU the worker may run on, one agent per CPU "
                       "(the worker's own thread is agent 0, pinned for each Parallel step); "
                       "a plan of more agents than those CPUs is unsupported"}


def _record_run(cells: Sequence[Cell], run_dir: Path, req: RunRequest, pin: tuple[int, ...],
                done: Done | None) -> RunManifest:
    """Stage 2: the manifest a run starts with, written before anything is measured."""
    data: dict[str, Any] = {
        "run_id": run_dir.name, "created": now(), "command": command_line(),
        "suite": req.suite, "settings": req.settings.to_dict(),
        "cell_timeout": req.cell_timeout, "cells_planned": len(cells), "pin": list(pin),
        "fingerprint": fingerprint(), "runtimes": {}, "status": "running", **req.extra,
        "concurrency": concurrency_record(pin),
        "strategies": {c.strategy.spec: {"isolation": c.strategy.isolation,
                                         "description": c.strategy.DESCRIPTION} for c in cells},
        REQUEST: req.record(cells)}
    if done is not None:
        data["created"] = done.manifest.get("created", data["created"])
        data["resumed"] = [*done.manifest.get("resumed", []), now()]
    warnings = noise_warnings(data["fingerprint"], pinned=bool(pin))
    if req.interference_s > 0:
        data["host_interference"] = {
            "start": interference_record(req.interference_s, pin, warnings, "start")}
    data["warnings"] = warnings
    manifest = RunManifest(run_dir, data)
    manifest.save()
    return manifest


def _isolation(cells: Sequence[Cell], run_id: str, probes: dict[str, Any],
               done: Done | None, writer: ResultsWriter, stop: GracefulStop) -> None:
    """The isolation probes of each strategy variant on each runtime of the run."""
    have = done.isolation if done is not None else set()
    # one cell per (strategy, runtime), in the run's order
    for (s, rt), c in {(c.strategy.spec, c.runtime.spec): c for c in cells}.items():
        for probe in PROBES:
            if (s, rt, probe) not in have:
                stop.check()
                writer.append(run_probe(probe, c.strategy, c.runtime, run_id, probes.get(rt)))


def _races(cells: Sequence[Cell], run_id: str, probes: dict[str, Any], done: Done | None,
            writer: ResultsWriter, stop: GracefulStop) -> None:
    """The race probe of each strategy variant whose agents split a kernel's rows
    (`threads=2` or more, `split=rows`), on each runtime that ran it."""
    have = done.isolation if done is not None else set()
    workloads: Registry[Workload] = Registry(WORKLOADS, "workload")
    for (s, rt), c in {(c.strategy.spec, c.runtime.spec): c for c in cells}.items():
        p = c.strategy.params
        if int(p.get("threads", 0)) >= 2 and p.get("split") == "rows" \
                and (s, rt, "race") not in have:
            stop.check()
            writer.append(run_race(c.strategy, c.runtime, run_id, workloads, probes.get(rt)))


def _stages(cells: Sequence[Cell], run_dir: Path, req: RunRequest, progress: ProgressFn | None,
            done: Done | None, stop: GracefulStop, writer: ResultsWriter) -> list[ResultRow]:
    order_seed = req.settings.order_seed
    if order_seed is None:
        order_seed = secrets.randbits(32)
    req = dataclasses.replace(req, settings=dataclasses.replace(req.settings,
                                                                order_seed=order_seed))
    pin = worker_pin(req)
    manifest = _record_run(cells, run_dir, req, pin, done)

    runtimes = {c.runtime.spec: c.runtime for c in cells}
    facts = prepare_runtimes(runtimes, req.cell_timeout, pin,
                             with_costs=req.cell_budget is not None)
    manifest.data["runtimes"] = facts.manifest
    manifest.save()

    noops = [noop_cell(rt) for rt in runtimes.values()] if req.calibrate else []
    schedule = make_schedule(noops, cells, req, req.settings)
    manifest.data["schedule"] = schedule.manifest()
    manifest.save()
    ledger = Ledger.resumed(schedule, done, list(runtimes))

    runner = RoundRunner(ledger, req, run_dir.name, pin, facts.probes, facts.costs, writer,
                         stop, progress)
    try:
        runner.finish_failed()
        if req.calibrate:
            runner.baselines(runtimes)
        for rnd in range(req.settings.rounds):
            runner.round(rnd)
            manifest.data["rounds_done"] = rnd + 1
            manifest.data["group_cost"] = runner.cost_summary()
            manifest.save()
        runner.fold_all()
        runner.count(done.counted if done is not None else ())
        if req.isolation:
            _isolation(cells, run_dir.name, facts.probes, done, writer, stop)
        _races(cells, run_dir.name, facts.probes, done, writer, stop)
        if req.interference_s > 0:
            manifest.data.setdefault("host_interference", {})["end"] = interference_record(
                req.interference_s, pin, manifest.data["warnings"], "end")
        manifest.data["status"] = "complete"
    except KeyboardInterrupt:
        manifest.data["status"] = "interrupted"
        raise
    finally:
        manifest.data["cells_done"] = sum(1 for j in ledger.final if j >= schedule.n_noops)
        manifest.save()
    ordered = [ledger.final[j] for j in range(len(schedule.jobs)) if j in ledger.final]
    counted = {**(done.counted if done is not None else {}), **runner.counted}
    return [*ledger.baselines.values(), *fold_counts(ordered, counted)]

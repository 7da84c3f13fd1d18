"""Calibration cells: the timer + embedding floor (`noop`) and the memory baseline.

Both run on the normal cell path (plan -> worker -> verify -> row), so they are measured
exactly like real cells:

* `noop` (strategy `noop`, mode `call`): one module with an empty exported function; an
  inference is one call of it from the embedding. Its median is the smallest time any
  cell with a wasm call can report on that runtime (timer, loop and call overhead). Cells
  whose median is under `OVERHEAD_FACTOR` × this are flagged `overhead_dominated`.
* `baseline` (strategy `noop`, mode `empty`): a plan with no module at all; the worker
  starts, imports the runtime, loads nothing. Its memory figures are subtracted from
  every cell's (`*_over_baseline`).

These are part of the harness, not plugins: they are never listed or run by name.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from harness.codegen.module import assemble
from harness.plugins.params import Param
from harness.plugins.plan import Call, Device, Instance, Module, Plan
from harness.plugins.strategy import PlanBuilder, Strategy
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from harness.run.request import Cell
from harness.runtimes.base import Runtime
from harness.store.rows import OVERHEAD_FACTOR, ResultRow

NOOP_WAT = '(module (func (export "noop")))'


class NoopWorkload(Workload):
    NAME = "noop"
    DESCRIPTION = "no tensors, no kernels: calibration only"

    def build_tensors(self) -> tuple[Tensor, ...]:
        return ()

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return ()

    def reference(self, data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {}

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)


class NoopStrategy(Strategy):
    NAME = "noop"
    DESCRIPTION = "calibration plan: one empty wasm call (call) or nothing at all (empty)"
    PARAMS: ClassVar[tuple[Param, ...]] = (
        Param("mode", "choice", "call", "call: one empty exported function per inference; "
              "empty: no module, no steps", choices=("call", "empty")),
    )

    def plan(self, workload: Workload) -> Plan:
        pb = PlanBuilder(workload=workload.spec, strategy=self.spec)
        if self.params["mode"] == "call":
            pb.devices.append(Device("dev0"))
            pb.modules.append(Module("noop", assemble(NOOP_WAT)))
            pb.instances.append(Instance("noop", "noop", "dev0"))
            pb.run.append(Call("noop", "noop", (), dispatch="noop"))
        pb.notes = "calibration"
        return pb.build()


def noop_cell(runtime: Runtime) -> Cell:
    return Cell(NoopWorkload(), NoopStrategy(mode="call"), runtime)


def baseline_cell(runtime: Runtime) -> Cell:
    return Cell(NoopWorkload(), NoopStrategy(mode="empty"), runtime)


def over_baseline(memory: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, int]:
    """The cell's memory figures minus the empty worker's, for the keys both have."""
    out = {}
    # a comparison group's peak is its one process's, held against the empty worker's peak
    for key, base_key in (("peak_rss", "peak_rss"), ("rss_after_load", "rss_after_load"),
                          ("vms_after_load", "vms_after_load"), ("group_peak_rss", "peak_rss")):
        if key in memory and base_key in base:
            out[f"{key}_over_baseline"] = int(memory[key]) - int(base[base_key])
    return out


def annotate(row: ResultRow, noop: ResultRow | None, baseline: ResultRow | None) -> ResultRow:
    """A final row with the overhead flag and the memory-over-baseline figures added."""
    changes: dict[str, Any] = {}
    if baseline is not None and baseline.status == "ok" and row.memory:
        changes["memory"] = {**row.memory, **over_baseline(row.memory, baseline.memory)}
    if noop is not None and noop.status == "ok" and noop.median_s and row.kind == "cell":
        changes["overhead_s"] = noop.median_s
        if row.median_s is not None:
            changes["overhead_dominated"] = row.median_s < OVERHEAD_FACTOR * noop.median_s
    return dataclasses.replace(row, **changes) if changes else row

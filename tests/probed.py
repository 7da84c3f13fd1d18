"""Cells run as `membench run` runs them: after their runtime's capability probe (cached
per test process)."""

from __future__ import annotations

import functools
from typing import Any

from harness.probes.probe import ProbeResult, probe_runtime
from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.store.rows import ResultRow


@functools.cache
def probe_of(runtime: str) -> ProbeResult:
    from harness.plugins.registry import RUNTIMES, Registry

    return probe_runtime(Registry(RUNTIMES, "runtime").create(runtime), timeout_s=60)


def probed_row(regs: Any, settings: Any, workload: str, strategy: str,
               runtime: str) -> ResultRow:
    """One cell, its plan checked against the runtime's probed capabilities first."""
    return run_cell(Cell(regs.workloads.create(workload), regs.strategies.create(strategy),
                         regs.runtimes.create(runtime)), "t", settings, 60,
                    probe=probe_of(runtime))

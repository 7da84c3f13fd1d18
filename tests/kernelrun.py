"""Run kernel workloads in-process on wasmtime (harness.worker.inprocess): fast property tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.plugins.workload import Workload
from harness.run.runner import Registries
from harness.runtimes.executor import LoadedPlan
from harness.worker import inprocess

#: strategies the kernel property tests cover, when registered
KERNEL_STRATEGIES = ("shared", "multi-memory")


def strategies(regs: Registries) -> list[str]:
    names = regs.strategies.names()
    return [s for s in KERNEL_STRATEGIES if s in names]


def run_outputs(regs: Registries, workload: Workload, strategy: str,
                data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One inference of `workload` on given data under `strategy` on wasmtime."""
    plan = regs.strategies.create(strategy).plan(workload)
    lp = LoadedPlan(regs.runtimes.create("wasmtime").backend(), plan, data)
    lp.load()
    lp.run_once()
    return inprocess.outputs(lp, workload)


def check_workload(regs: Registries, spec: str, seed: int = 0) -> None:
    """Every registered kernel strategy must reproduce the NumPy reference within tolerance."""
    w = regs.workloads.create(spec)
    rt = regs.runtimes.create("wasmtime")
    for s in strategies(regs):
        verdict = inprocess.run_and_verify(w, regs.strategies.create(s), rt, seed)
        assert verdict.ok, f"{spec} under {s}: {verdict.message}"

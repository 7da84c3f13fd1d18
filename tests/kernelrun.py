"""Run kernel workloads in-process on wasmtime (harness.worker.inprocess): fast property tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.plugins.plan import Plan
from harness.plugins.verify import compare
from harness.plugins.workload import Workload
from harness.run.request import Registries
from harness.runtimes.base import Backend
from harness.runtimes.executor import LoadedPlan
from harness.worker import inprocess

#: strategies the kernel property tests cover, when registered
KERNEL_STRATEGIES = ("shared", "multi-memory")


def strategies(regs: Registries) -> list[str]:
    names = regs.strategies.names()
    return [s for s in KERNEL_STRATEGIES if s in names]


def _run(regs: Registries, workload: Workload, strategy: str, data: Mapping[str, np.ndarray],
         backend: Backend | None) -> tuple[LoadedPlan, Plan]:
    """Plan `workload` under the `strategy` spec, load it on `backend` (default: a fresh
    wasmtime one), zero the counters and run one inference."""
    plan = regs.strategies.create(strategy).plan(workload)
    if backend is None:
        backend = regs.runtimes.create("wasmtime").backend()
    lp = LoadedPlan(backend, plan, data)
    lp.load()
    lp.reset_counters()
    lp.run_once()
    return lp, plan


def run_outputs(regs: Registries, workload: Workload, strategy: str,
                data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One inference of `workload` on given data under `strategy` on wasmtime."""
    lp, _ = _run(regs, workload, strategy, data, None)
    return inprocess.outputs(lp, workload)


def run_verified(regs: Registries, workload: Workload | str, strategy: str, seed: int = 0, *,
                 backend: Backend | None = None) -> tuple[LoadedPlan, Plan]:
    """One inference of `workload` (an instance or a spec) on its generated data under the
    `strategy` spec, on `backend` (default: a fresh wasmtime one); asserts the outputs are
    within the workload's tolerance of its NumPy reference. Returns the loaded plan, its
    counters covering just that inference, and the plan."""
    w = regs.workloads.create(workload) if isinstance(workload, str) else workload
    data = w.generate(seed)
    lp, plan = _run(regs, w, strategy, data, backend)
    verdict = compare(inprocess.outputs(lp, w), w.reference(data), w.tolerance())
    name = workload if isinstance(workload, str) else w.spec
    assert verdict.ok, f"{name} under {strategy}: {verdict.message}"
    return lp, plan


def check_workload(regs: Registries, spec: str, seed: int = 0) -> None:
    """Every registered kernel strategy must reproduce the NumPy reference within tolerance."""
    w = regs.workloads.create(spec)
    for s in strategies(regs):
        run_verified(regs, w, s, seed)

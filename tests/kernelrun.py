"""Run workloads in-process on wasmtime (no worker process): fast enough for property tests."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.runner import Registries
from harness.runtimes.executor import LoadedPlan
from harness.verify import compare
from harness.workload import Workload

#: strategies the kernel property tests cover, when registered
KERNEL_STRATEGIES = ("shared", "multi-memory")


def strategies(regs: Registries) -> list[str]:
    names = regs.strategies.names()
    return [s for s in KERNEL_STRATEGIES if s in names]


def run_outputs(regs: Registries, workload: Workload, strategy: str,
                data: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Plan `workload` under `strategy`, run one inference on wasmtime, return the outputs."""
    plan = regs.strategies.create(strategy).plan(workload)
    backend = regs.runtimes.create("wasmtime").backend()
    lp = LoadedPlan(backend, plan, data)
    lp.load()
    lp.run_once()
    out = {}
    for t in workload.by_role("output"):
        out[t.name] = lp.outputs[t.name].view(np.dtype(t.dtype).newbyteorder("<")) \
            .reshape(t.shape).copy()
    return out


def check_workload(regs: Registries, spec: str, seed: int = 0) -> None:
    """Every registered kernel strategy must reproduce the NumPy reference within tolerance."""
    w = regs.workloads.create(spec)
    data = w.generate(seed)
    ref = w.reference(data)
    for s in strategies(regs):
        verdict = compare(run_outputs(regs, w, s, data), ref, w.tolerance())
        assert verdict.ok, f"{spec} under {s}: {verdict.message}"

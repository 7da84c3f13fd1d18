"""Run a workload under a strategy inside this process (no worker), for tests and benchmarks.

The same path a worker takes — strategy -> Plan -> `LoadedPlan` on a runtime's `Backend`
— without the process boundary, so many small cases stay fast. Cells that report results
still go through workers (`harness.run.cell`).
"""

from __future__ import annotations

import numpy as np

from harness.plugins.requests import output_tensor, request_data, request_reference
from harness.plugins.strategy import Strategy
from harness.plugins.verify import Verdict, compare
from harness.plugins.workload import Workload
from harness.runtimes.base import Runtime
from harness.runtimes.executor import LoadedPlan


def load(workload: Workload, strategy: Strategy, runtime: Runtime,
         seed: int = 0) -> tuple[LoadedPlan, dict[str, np.ndarray]]:
    """Plan `workload`, load it on `runtime`'s backend; returns the plan and its data
    (every request's, for a plan that serves several)."""
    plan = strategy.plan(workload)
    data = request_data(workload, seed, plan.requests)
    lp = LoadedPlan(runtime.backend(), plan, data)
    lp.load()
    return lp, data


def outputs(lp: LoadedPlan, workload: Workload) -> dict[str, np.ndarray]:
    """The last inference's outputs, typed and shaped like their tensors."""
    shaped = {}
    for name, raw in lp.outputs.items():
        t = workload.tensor(output_tensor(name))
        shaped[name] = raw.view(t.dtype).reshape(t.shape)
    return shaped


def run_and_verify(workload: Workload, strategy: Strategy, runtime: Runtime,
                   seed: int = 0) -> Verdict:
    """One inference, checked against the NumPy reference within the workload's tolerance."""
    lp, data = load(workload, strategy, runtime, seed)
    lp.run_once()
    return compare(outputs(lp, workload), request_reference(workload, data, lp.plan.requests),
                   workload.tolerance())

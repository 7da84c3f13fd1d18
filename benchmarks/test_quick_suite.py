"""pytest-benchmark over the quick suite's cells, in process (no worker process).

    pytest benchmarks --benchmark-autosave --benchmark-compare
    membench import-pytest-benchmark .benchmarks/<machine>/0001_*.json   # -> a run directory

Each cell (workload × strategy × runtime with a Python backend) is planned and loaded in
this process, its first inference checked against the NumPy reference, then
`LoadedPlan.run_once` (one inference) is benchmarked. `extra_info` carries the cell's
identity so the import can rebuild harness result rows.

Differences from `membench run`: one process for all cells (no fresh worker per cell, no
interleaved rounds), pytest-benchmark's own calibration and warm-up, no noop calibration.
"""

from __future__ import annotations

import pytest

from harness.plugins.strategy import Unsupported
from harness.plugins.verify import compare
from harness.probes.probe import ProbeResult, probe_runtime
from harness.run.request import Registries
from harness.run.suite import load_suite
from harness.runtimes.base import RuntimeUnsupported
from harness.runtimes.executor import LoadedPlan
from harness.worker.inprocess import outputs as outputs_of

SUITE = load_suite("quick")
REGS = Registries.from_entry_points()
CELLS = [(w, s, r) for w in SUITE.workloads for s in SUITE.strategies for r in SUITE.runtimes]


@pytest.fixture(scope="session")
def probes() -> dict[str, ProbeResult]:
    """Each runtime's capability probe, run once per session when first needed."""
    return {}


def _loaded(workload: str, strategy: str, runtime: str,
            probes: dict[str, ProbeResult]) -> tuple[LoadedPlan, dict]:
    w = REGS.workloads.create(workload)
    try:
        plan = REGS.strategies.create(strategy).plan(w)
    except Unsupported as exc:
        pytest.skip(f"unsupported: {exc}")
    rt = REGS.runtimes.create(runtime)
    if runtime not in probes:
        probes[runtime] = probe_runtime(rt)
    probe = probes[runtime]
    if probe.status != "ok":
        pytest.skip(f"{runtime} unavailable: {probe.message}")
    missing = probe.missing(plan.requires)
    if missing:  # as a worker reports it: the cell is unsupported, not failed
        pytest.skip(f"unsupported: {runtime} lacks {', '.join(missing)}")
    try:
        backend = rt.backend()
    except (NotImplementedError, ImportError) as exc:
        # e.g. wasmer, whose bindings live in the Python 3.10 worker environment only
        pytest.skip(f"{runtime} has no in-process backend in this interpreter: {exc}")
    data = w.generate(0)
    lp = LoadedPlan(backend, plan, data)
    try:
        lp.load()
    except RuntimeUnsupported as exc:  # the embedding cannot express part of the plan
        pytest.skip(f"unsupported: {exc}")
    lp.run_once()
    outputs = outputs_of(lp, w)
    verdict = compare(outputs, w.reference(data), w.tolerance())
    assert verdict.ok, verdict.message
    info = {"workload": w.spec, "strategy": plan.strategy, "runtime": runtime,
            "flops": w.flops(), "compulsory_bytes": w.compulsory_bytes(),
            "bytes_copied_per_run": plan.bytes_copied_per_run(),
            "calls_per_run": plan.calls_per_run(), "runtime_version": backend.version(),
            "max_abs_err": verdict.max_abs_err}
    return lp, info


@pytest.mark.parametrize("workload, strategy, runtime", CELLS,
                         ids=[" | ".join(c) for c in CELLS])
def test_inference(benchmark, probes: dict[str, ProbeResult], workload: str, strategy: str,
                   runtime: str) -> None:
    lp, info = _loaded(workload, strategy, runtime, probes)
    benchmark.extra_info.update(info)
    benchmark.group = workload
    benchmark(lp.run_once)

"""Stage 2 of a run: know the runtimes before any cell runs.

Per runtime: its capabilities (probed by running tiny modules), the embedding's own cost
(one call into wasm, one host call out: shown next to results so a strategy's cost can be
told from the embedding's) and, when the run has a cell budget, the per-call and per-byte
costs that price a plan before it runs. Plus the host-interference probe the run takes at
its start and its end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.probes.estimate import CallCosts, measure_call_costs
from harness.probes.interference import WARN_FRACTION, probe_interference
from harness.probes.overhead import measure_overhead
from harness.probes.probe import ProbeResult, probe_runtime
from harness.runtimes.base import Runtime

#: no probe of a runtime waits longer than this, whatever the cell timeout
PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RuntimeFacts:
    """What the run knows of its runtimes: probes and (with a cell budget) call costs,
    by runtime spec, and the manifest's `runtimes` section that records them."""

    probes: dict[str, ProbeResult]
    costs: dict[str, CallCosts]
    manifest: dict[str, dict[str, Any]]


def prepare_runtimes(runtimes: Mapping[str, Runtime], cell_timeout: float,
                     pin: Sequence[int], with_costs: bool) -> RuntimeFacts:
    """Probe every runtime, measure its embedding overhead and, `with_costs`, its call
    costs. A runtime that cannot start is recorded as such; nothing here raises for it."""
    timeout = min(cell_timeout, PROBE_TIMEOUT_S)
    probes = {spec: probe_runtime(rt, timeout_s=timeout) for spec, rt in runtimes.items()}
    manifest = {spec: p.to_dict() for spec, p in probes.items()}
    for spec, rt in runtimes.items():
        p = probes[spec]
        manifest[spec]["overhead"] = (
            measure_overhead(rt, timeout_s=timeout, pin=pin).to_dict()
            if p.status == "ok" and p.has("host-func-import")
            else {"status": "unavailable", "message": p.message or "no host-function imports"})
    costs: dict[str, CallCosts] = {}
    if with_costs:
        for spec, rt in runtimes.items():
            if probes[spec].status != "ok":
                continue
            measured = measure_call_costs(rt, timeout_s=timeout, pin=pin)
            if isinstance(measured, CallCosts):
                costs[spec] = measured
            manifest[spec]["call_costs"] = (
                measured.to_dict() if isinstance(measured, CallCosts) else measured)
    return RuntimeFacts(probes, costs, manifest)


def interference_record(duration_s: float, cpus: Sequence[int], warnings: list[str],
                        when: str) -> dict[str, Any]:
    """Probe host interference on the workers' CPUs; a warning when it is high."""
    found = probe_interference(duration_s, cpus=cpus)
    if found.slowed_fraction > WARN_FRACTION:
        warnings.append(f"at the {when} of the run, {found.describe()}")
    return found.to_dict()

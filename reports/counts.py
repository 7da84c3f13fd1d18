"""Counts beside time (`--measure fuel`): the wasm operators one inference executes, from
wasmtime's fuel in a counting pass of its own, against `shared` on the same workload and
engine, and the time per operator. A count does not move with the host's noise: where a
strategy's time and its count move together, the count explains the time (paged
host-call's inline cache checks are operators; per-module's copies are not, they are the
host's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.strategies import BASELINE
from harness.store.rows import ResultRow


@dataclass(frozen=True)
class OperatorCount:
    workload: str
    runtime: str
    strategy: str
    operators: int            # wasm operators per inference
    vs_baseline: float | None  # over the baseline strategy's count
    ns_per_operator: float | None


def operator_counts(rows: Sequence[ResultRow]) -> list[OperatorCount]:
    """Every ok cell that was counted, with its baseline's count where that was too."""
    counted = {(r.workload, r.runtime, r.strategy, r.side): r for r in rows
               if r.kind == "cell" and r.status == "ok"
               and isinstance(r.metrics.get("fuel"), int)}
    out = []
    for (w, rt, s, side), r in sorted(counted.items()):
        ops = int(r.metrics["fuel"])
        base = counted.get((w, rt, BASELINE, side))
        base_ops = int(base.metrics["fuel"]) if base is not None else 0
        out.append(OperatorCount(w, rt, s, ops, ops / base_ops if base_ops else None,
                                 r.median_s / ops * 1e9 if r.median_s and ops else None))
    return out

"""Interleaved rounds: the per-round cell order, and folding a cell's rounds into one row.

Sightglass's answer to drift (thermal state, other tenants, frequency changes): run every
cell once per round, each time in a fresh worker process, in an order shuffled anew for
each round from a recorded seed. A slow minute then spreads over many cells' samples
instead of landing on one cell, and process-level effects (address-space layout, page
placement, JIT decisions) vary between a cell's rounds instead of being baked into it.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from harness.analysis.stats import summarize
from harness.store.rows import ResultRow


def cell_orders(n_cells: int, rounds: int, seed: int,
                blocks: Sequence[Hashable] | None = None) -> list[list[int]]:
    """For each round, a permutation of range(n_cells); reproducible from `seed`.

    With `blocks` (a block label per cell), cells sharing a label stay adjacent: the blocks
    are shuffled, then the cells within each block. An A/B run blocks each A cell with its
    B cell, so both sides of a pair run back to back and a burst of interference from
    other tenants (tens of milliseconds on this kind of host) tends to hit both.
    """
    rng = np.random.default_rng(seed)
    if blocks is None:
        return [[int(i) for i in rng.permutation(n_cells)] for _ in range(rounds)]
    if len(blocks) != n_cells:
        raise ValueError(f"{len(blocks)} block labels for {n_cells} cells")
    groups: dict[Hashable, list[int]] = {}
    for j, label in enumerate(blocks):
        groups.setdefault(label, []).append(j)
    members = list(groups.values())
    orders = []
    for _ in range(rounds):
        order: list[int] = []
        for g in rng.permutation(len(members)):
            order += [members[g][int(i)] for i in rng.permutation(len(members[g]))]
        orders.append(order)
    return orders


def _median_of(values: Sequence[Any]) -> Any:
    """Median of numbers, or key-wise median of dicts of numbers (missing keys skipped)."""
    if not values:
        return None
    if all(isinstance(v, dict) for v in values):
        keys = dict.fromkeys(k for v in values for k in v)
        return {k: _median_of([v[k] for v in values if k in v]) for k in keys}
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) != len(values):
        return values[0]
    return statistics.median(nums)


def _memory(values: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Peaks combine by max (the cell's high-water mark), the rest by median."""
    out: dict[str, Any] = _median_of(values) or {}
    for key in out:
        if key.startswith("peak"):
            out[key] = max(int(v[key]) for v in values if key in v)
        elif isinstance(out[key], float):
            out[key] = int(out[key])
    return out


def round_info(row: ResultRow, position: int | None = None) -> dict[str, Any]:
    """What a `cell` row keeps of each of its rounds."""
    info: dict[str, Any] = {"round": row.round, "status": row.status, "n": len(row.samples_s),
                            "median_s": row.median_s, "inner": row.inner,
                            "phases": row.phases, "memory": row.memory, "wall_s": row.wall_s}
    info.update({k: v for k, v in row.timing.items() if k != "samples_s"})
    if position is not None:
        info["position"] = position
    if row.breakdown:
        info["breakdown"] = row.breakdown
    return info


def combine_rounds(rows: Sequence[ResultRow], kind: str = "cell",
                   positions: Sequence[int | None] | None = None) -> ResultRow:
    """One row for a cell from its round rows (in any order).

    All rounds ok: samples concatenated in round order, phases and memory combined
    across rounds (median; peaks by max), counters from the first round (every round was
    checked against the plan), the worst error. Any round not ok: the cell takes the
    first failing round's status and reason (prefixed with the round), and no timings.
    """
    if not rows:
        raise ValueError("a cell needs at least one round")
    order = sorted(range(len(rows)), key=lambda i: rows[i].round or 0)
    rows = [rows[i] for i in order]
    pos = [positions[i] for i in order] if positions is not None else [None] * len(rows)
    infos = tuple(round_info(r, p) for r, p in zip(rows, pos, strict=True))
    first = rows[0]
    bad = next((r for r in rows if r.status != "ok"), None)
    if bad is not None:
        reason = bad.reason if len(rows) == 1 else f"round {bad.round}: {bad.reason}"
        return dataclasses.replace(bad, kind=kind, round=None, reason=reason, samples_s=(),
                                   median_s=None, rounds=infos,
                                   wall_s=sum(r.wall_s for r in rows))
    samples = tuple(x for r in rows for x in r.samples_s)
    stats = summarize(samples).to_dict() if samples else {}
    errs = [r.max_abs_err for r in rows if r.max_abs_err is not None]
    breakdowns = [r.breakdown for r in rows if r.breakdown]
    # a plan of agents: where they ran (the first round's CPUs) and the hand-off's cost
    agents = [r.timing["agents"] for r in rows if r.timing.get("agents")]
    hands = [float(a["handoff_s"]) for a in agents if a.get("handoff_s") is not None]
    agent_info = {"agents": {**agents[0], "handoff_s": statistics.median(hands) if hands
                             else None, "cpus_by_round": [a.get("cpus") for a in agents]}} \
        if agents else {}
    return dataclasses.replace(
        first, kind=kind, round=None, samples_s=samples,
        median_s=statistics.median(samples) if samples else None,
        phases=_median_of([r.phases for r in rows]) or {},
        memory=_memory([r.memory for r in rows]),
        breakdown=_median_of(breakdowns) if breakdowns else {},
        max_abs_err=max(errs) if errs else None,
        timing={"inner": [r.inner for r in rows],
                "clock": first.timing.get("clock", "wall"),
                "steady": all(r.timing.get("steady", True) for r in rows), **agent_info},
        rounds=infos, stats=stats, wall_s=sum(r.wall_s for r in rows))

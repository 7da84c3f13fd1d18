"""Memories that grow under live modules (workloads with a growing tensor, e.g. `decode`):
per cell, the grows the first inference made, their time, and the linear memory before
and after; a figure per growing workload of the grows' share of the first inference. A
run without a growing workload has no such section.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.fmt import fmt_time
from harness.store.rows import ResultRow
from reports.data import phases, round_phases
from reports.palette import Style
from reports.plotting import figure_height, grouped_hbars, pyplot, save

_COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


@dataclass(frozen=True)
class Growth:
    workload: str
    runtime: str
    strategy: str
    grows: int                  # on the first inference (set-up's included)
    grow_s: float               # their time: median over rounds
    grow_lo: float
    grow_hi: float
    first_s: float | None       # the first inference (the grows are in it): median
    median_s: float | None      # a later inference (grows nothing)
    linear_setup: int | None    # linear memory after set-up ...
    linear_after: int | None    # ... and after the inferences

    @property
    def per_grow_s(self) -> float:
        return self.grow_s / self.grows if self.grows else 0.0


def growths(rows: Sequence[ResultRow]) -> list[Growth]:
    """Every ok cell whose plan grew a memory (its phases count grows)."""
    out = []
    for row in rows:
        if row.status != "ok" or "grows" not in row.phases:
            continue
        per = [p for p in round_phases(row) if "grow_s" in p]
        times = [float(p["grow_s"]) for p in per] or [0.0]
        firsts = [v for p in per if (v := phases({"phases": p})["first inference"]) is not None]
        out.append(Growth(row.workload, row.runtime, row.strategy, int(row.phases["grows"]),
                          statistics.median(times), min(times), max(times),
                          statistics.median(firsts) if firsts else None, row.median_s,
                          row.memory.get("linear_bytes_after_setup"),
                          row.memory.get("linear_bytes")))
    return sorted(out, key=lambda g: (g.workload, g.runtime, g.strategy))


def figure(items: Sequence[Growth], workload: str, path: Path) -> Path:
    """One growing workload: per strategy, a bar per runtime of the first inference's time
    spent growing memories (median over rounds), its grows in the legend's order."""
    plt = pyplot()
    mine = [g for g in items if g.workload == workload]
    strategies = list(dict.fromkeys(g.strategy for g in mine))
    runtimes = list(dict.fromkeys(g.runtime for g in mine))
    by = {(g.strategy, g.runtime): g for g in mine}
    fig, ax = plt.subplots(figsize=(9.0, figure_height(len(strategies) * len(runtimes))))
    series = [(rt, [by[(s, rt)].grow_s if (s, rt) in by else None for s in strategies],
               Style(_COLOURS[i % len(_COLOURS)], "")) for i, rt in enumerate(runtimes)]
    counts = {s: sorted({by[(s, rt)].grows for rt in runtimes if (s, rt) in by})
              for s in strategies}
    grouped_hbars(ax, [f"{s} ({'/'.join(map(str, counts[s]))} grows)" for s in strategies],
                  series, fmt_time)
    ax.set_xlabel("time growing memories in the first inference (median over rounds)")
    ax.set_title(f"{workload}: grows under live modules")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=4)
    fig.tight_layout()
    return save(fig, path)


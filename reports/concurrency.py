"""Concurrent dispatch (`threads=N` strategy variants): per engine and workload, throughput
against agents, one line per strategy (shared or multi-memory, rows or batch); speed-up over
the same strategy's one agent, efficiency (speed-up per agent) and the hand-off's own cost
per Parallel step beside them; the engines that cannot run agents and why; and the race
probe's outcome. A run without such variants has no section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import SpecError
from harness.plugins.spec import parse_spec
from harness.store.rows import ResultRow
from reports.plotting import pyplot, save

_COLOURS = {"shared": "#4C72B0", "multi-memory": "#55A868"}


@dataclass(frozen=True)
class Scaling:
    workload: str
    runtime: str
    strategy: str
    family: str                 # "shared, split=rows": the line it is on
    agents: int                 # 0: the plain strategy (the worker's one thread, no agents)
    requests: int               # requests one inference serves
    median_s: float
    fast_s: float               # fastest and slowest sample: the spread
    slow_s: float
    q1_s: float                 # quartiles of the samples: the figure's bars
    q3_s: float
    speedup: float | None       # throughput over the same strategy's one agent
    handoff_s: float | None     # the hand-off's own cost per Parallel step
    cpus: tuple[int | None, ...]

    @property
    def throughput(self) -> float:
        """Requests per second."""
        return self.requests / self.median_s

    @property
    def efficiency(self) -> float | None:
        return self.speedup / self.agents if self.speedup and self.agents else None


def _shape(strategy: str) -> tuple[str, int, str] | None:
    """(name, agents, split) of a threads-capable strategy spec; None for others."""
    try:
        spec = parse_spec(strategy)
    except SpecError:  # a row from elsewhere: not a strategy spec of ours
        return None
    params = dict(spec.params)
    if spec.name not in _COLOURS:
        return None
    try:
        return spec.name, int(params.get("threads", 0)), params.get("split", "rows")
    except ValueError:
        return None


def scalings(rows: Sequence[ResultRow]) -> list[Scaling]:
    """Every ok cell of a workload that some `threads=N` variant ran, with its speed-up."""
    shaped = [(r, s) for r in rows if r.status == "ok" and r.median_s
              and (s := _shape(r.strategy)) is not None]
    threaded = {r.workload for r, (_, agents, _) in shaped if agents}
    one: dict[tuple[str, str, str, str], float] = {}
    for r, (name, agents, split) in shaped:
        if agents == 1 and r.median_s:
            one[(r.workload, r.runtime, name, split)] = r.median_s
    out = []
    for r, (name, agents, split) in shaped:
        if r.workload not in threaded or r.median_s is None:
            continue
        requests = agents if split == "batch" and agents else 1
        base = one.get((r.workload, r.runtime, name, split)) or \
            one.get((r.workload, r.runtime, name, "rows"))
        speedup = (requests / r.median_s) / (1 / base) if base and agents else None
        info: Mapping[str, Any] = r.timing.get("agents") or {}
        samples = [s for s in r.samples_s if s > 0] or [r.median_s]
        q1, q3 = (float(q) for q in np.percentile(samples, [25, 75]))
        out.append(Scaling(r.workload, r.runtime, r.strategy,
                           f"{name}, split={split}" if agents else f"{name} (no agents)",
                           agents, requests, r.median_s, min(samples), max(samples), q1, q3,
                           speedup, info.get("handoff_s"), tuple(info.get("cpus") or ())))
    return sorted(out, key=lambda x: (x.workload, x.runtime, x.family, x.agents))


def figure(items: Sequence[Scaling], workload: str, runtime: str, path: Path) -> Path:
    """Requests per second against agents, a line per strategy and split (bars: the
    samples' quartiles); one agent is the same plan for either split, so both lines start
    there; the plain strategy, without agents, a dotted level."""
    plt = pyplot()
    mine = [x for x in items if x.workload == workload and x.runtime == runtime]
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    most = max((x.agents for x in mine), default=1)
    one = {x.family.split(",")[0]: x for x in mine if x.agents == 1}
    families = list(dict.fromkeys(x.family for x in mine))
    for k, family in enumerate(families):
        line = [x for x in mine if x.family == family]
        name = family.split(",")[0].split(" ")[0]
        colour = _COLOURS.get(name, "#937860")
        if not line[0].agents:
            ax.axhline(line[0].throughput, color=colour, linestyle=":", linewidth=1,
                       label=family)
            continue
        if line[0].agents > 1 and name in one:  # a batch of one is the one-agent plan
            line = [one[name], *line]
        shift = 0.02 * (k - len(families) / 2)  # lines that coincide stay apart
        xs = [x.agents + shift for x in line]
        ys = [x.throughput for x in line]
        err = [[y - x.requests / x.q3_s for x, y in zip(line, ys, strict=True)],
               [x.requests / x.q1_s - y for x, y in zip(line, ys, strict=True)]]
        ax.errorbar(xs, ys, yerr=err, color=colour, marker="o" if "rows" in family else "s",
                    linestyle="-" if "rows" in family else "--", capsize=3, label=family)
    ax.set_xticks(range(1, most + 1))
    ax.set_xlabel("agents (threads, one per CPU)")
    ax.set_ylabel("requests/s (median; bars: quartiles)")
    ax.set_title(f"{workload} on {runtime}")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, path)


@dataclass(frozen=True)
class Race:
    strategy: str
    runtime: str
    status: str
    outcome: str
    detail: str


def races(race_rows: Sequence[Mapping[str, Any]]) -> list[Race]:
    """The race probe's rows (kind `race`), one per strategy variant and engine."""
    out = []
    for r in race_rows:
        metrics = r.get("metrics") or {}
        out.append(Race(str(r.get("strategy")), str(r.get("runtime")), str(r.get("status")),
                        str(metrics.get("outcome", "")), str(r.get("reason", ""))))
    return sorted(out, key=lambda x: (x.runtime, x.strategy))


def without_agents(rows: Sequence[ResultRow]) -> dict[str, str]:
    """Engine -> why it ran no `threads=N` variant (the first such reason)."""
    out: dict[str, str] = {}
    for r in rows:
        shape = _shape(r.strategy)
        if shape is None or not shape[1] or r.status == "ok":
            continue
        if r.status in ("unsupported", "unavailable") and "CPUs of their own" not in r.reason:
            out.setdefault(r.runtime, r.reason)
    return out


def too_many(rows: Sequence[ResultRow]) -> list[str]:
    """The variants refused because they have more agents than the worker has CPUs."""
    return sorted({f"{r.strategy} on {r.runtime}" for r in rows
                   if "CPUs of their own" in r.reason})

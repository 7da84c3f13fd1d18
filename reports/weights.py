"""Weight placement (`load=`, `strategies.weight_load`) against weight size: per engine, the
load time (compile + instantiate + set-up, median and range over rounds), what loading and
the first inference made resident, and the first inference's time, one line per placement.
A run without a `load=` variant has no such section.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import MembenchError
from harness.plugins.registry import WORKLOADS, Registry
from harness.plugins.spec import Spec, parse_spec
from harness.plugins.workload import Workload
from harness.store.rows import ResultRow
from reports.data import phases, round_phases
from reports.plotting import fmt_bytes, log_formatter, pyplot, save

#: the placements, in the order the report lists them
LOADS = ("copy", "segment", "passive", "cow")
_COLOURS = {"copy": "#4C72B0", "segment": "#DD8452", "passive": "#55A868", "cow": "#C44E52"}


@dataclass(frozen=True)
class WeightLoad:
    workload: str
    runtime: str
    strategy: str
    base: str                    # the strategy without `load`
    load: str
    weight_bytes: int
    load_s: float                # compile + instantiate + set-up: median over rounds
    load_lo: float
    load_hi: float
    first_s: float | None        # the first inference
    rss_load: int | None         # resident bytes loading added
    rss_first: int | None        # ... and after the first inference
    precompile_s: float | None   # cow: the ahead-of-time build, not part of the load


def _load_of(strategy: str) -> tuple[str, str] | None:
    try:
        spec = parse_spec(strategy)
    except MembenchError:
        return None
    params = dict(spec.params)
    load = params.pop("load", "copy")
    return str(Spec(spec.name, tuple(params.items()), spec.version)), load


def _weight_bytes(workload: str, cache: dict[str, int | None]) -> int | None:
    if workload not in cache:
        try:
            w: Workload = Registry(WORKLOADS, "workload").create(workload)
            cache[workload] = sum(t.nbytes for t in w.by_role("weight"))
        except MembenchError:
            cache[workload] = None
    return cache[workload]


def weight_loads(rows: Sequence[ResultRow]) -> list[WeightLoad]:
    """Every ok cell of a strategy that was run with a `load=` other than copy, and its copy
    twins (same workload, engine and base strategy)."""
    parsed = {r.strategy: _load_of(r.strategy) for r in rows}
    bases = {p[0] for p in parsed.values() if p is not None and p[1] != "copy"}
    sizes: dict[str, int | None] = {}
    out = []
    for row in rows:
        got = parsed[row.strategy]
        if row.status != "ok" or got is None or got[0] not in bases:
            continue
        nbytes = _weight_bytes(row.workload, sizes)
        if not nbytes:
            continue
        loads = []
        for p in round_phases(row):
            ph = phases({"phases": p})
            parts = [ph["compile"], ph["instantiate"], ph["weight load"]]
            if all(v is not None for v in parts):
                loads.append(sum(v for v in parts if v is not None))
        if not loads:
            continue
        first = [v for p in round_phases(row)
                 if (v := phases({"phases": p})["first inference"]) is not None]
        pre = [sum(p["precompile_s"].values()) for p in round_phases(row)
               if isinstance(p.get("precompile_s"), dict)]
        mem = row.memory
        rss_load = mem.get("rss_load_delta")
        if rss_load is None and mem.get("rss_after_load") is not None:
            rss_load = mem["rss_after_load"] - mem.get("rss_start", 0)
        out.append(WeightLoad(row.workload, row.runtime, row.strategy, got[0], got[1], nbytes,
                              statistics.median(loads), min(loads), max(loads),
                              statistics.median(first) if first else None, rss_load,
                              mem.get("rss_first_delta"),
                              statistics.median(pre) if pre else None))
    order = {k: i for i, k in enumerate(LOADS)}
    return sorted(out, key=lambda w: (w.runtime, w.base, order.get(w.load, 9), w.weight_bytes))


def figure(loads: Sequence[WeightLoad], runtime: str, path: Path) -> Path:
    """Load time and resident bytes against weight size on one engine: a line per (base
    strategy, placement); load time with its range over rounds."""
    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13.0, 4.8))
    mine = [w for w in loads if w.runtime == runtime]
    styles = ("-", "--", ":", "-.")
    bases = sorted({w.base for w in mine})
    for bi, base in enumerate(bases):
        for load in LOADS:
            pts = sorted((w for w in mine if w.base == base and w.load == load),
                         key=lambda w: w.weight_bytes)
            if not pts:
                continue
            xs = [w.weight_bytes for w in pts]
            label = f"{base} load={load}"
            style = {"color": _COLOURS.get(load, "#777777"),
                     "linestyle": styles[bi % len(styles)], "marker": "o"}
            ax_t.errorbar(xs, [w.load_s for w in pts],
                          yerr=[[w.load_s - w.load_lo for w in pts],
                                [w.load_hi - w.load_s for w in pts]], label=label,
                          capsize=3, **style)
            for field, hollow in (("rss_load", False), ("rss_first", True)):
                rss = [(x, v) for x, w in zip(xs, pts, strict=True)
                       if (v := getattr(w, field)) is not None and v > 0]
                if rss:
                    look = {**style, "linestyle": ":", "markersize": 11, "linewidth": 1,
                            "markerfacecolor": "none"} if hollow else style
                    ax_m.plot(*zip(*rss, strict=True), **look)
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(log_formatter(fmt_bytes))
        ax.set_xlabel("weight bytes")
        ax.grid(True, which="both", alpha=0.3)
    ax_t.set_ylabel("seconds (compile + instantiate + set-up)")
    ax_t.set_title(f"{runtime}: load time (median, range over rounds)")
    ax_m.yaxis.set_major_formatter(log_formatter(fmt_bytes))
    ax_m.set_ylabel("resident bytes added")
    ax_m.set_title(f"{runtime}: RSS after load (filled) and after the first inference "
                   "(hollow); 0 not drawn", fontsize=10)
    ax_t.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save(fig, path)

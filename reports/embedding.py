"""What the embedding costs: the host language's part in every number.

Two tables, both read from the run's rows:

* **host calls by host language.** `host-call`'s extra time over `shared` (paired, per
  workload) divided by its host calls per inference: what one host call costs, with the
  host written in the embedding's language (Python, JavaScript, or C for `wasm2c`'s native
  program) or as a wasm shim (`host=wasm`). It is an upper bound on a call's cost: the
  paged cache's inline tag checks are in the extra time too.
* **dispatch by the embedding.** Each cell's calls per inference times its runtime's
  empty-call cost (the `noop` calibration cell), as a share of the inference: how much of
  a number is the host language driving the dispatches rather than the kernels. `wasm2c`
  runs the plan as a native program, so its share is the floor.
"""

from __future__ import annotations

import functools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from harness.analysis.strategies import (
    CellName,
    StrategyRatio,
    geomean_paired,
    ratio_of,
    ratio_verdict,
    twin_rows,
)
from harness.core.errors import MembenchError
from harness.plugins.registry import RUNTIMES, Registry
from harness.plugins.spec import without_param
from harness.runtimes.base import Runtime
from harness.store.rows import ResultRow


@functools.cache
def host_language(runtime_spec: str) -> str:
    """The embedding language of a runtime spec ("?" for one this install does not know)."""
    try:
        return Registry[Runtime](RUNTIMES, "runtime").create(runtime_spec).HOST_LANGUAGE
    except MembenchError:
        return "?"


def host_of(strategy: str, runtime_spec: str) -> str:
    """Who serves a host-call variant's host calls."""
    return "wasm shim" if "host=wasm" in strategy else host_language(runtime_spec)


@dataclass(frozen=True)
class HostCallCost:
    runtime: str
    strategy: str
    host: str
    workloads: int
    host_calls: int          # per inference, median over the workloads
    per_call_s: float        # extra time over shared per host call, median over workloads
    ratio: float             # median paired ratio to shared over the workloads


def host_call_costs(ratios: Sequence[StrategyRatio],
                    rows: Sequence[ResultRow]) -> list[HostCallCost]:
    """Per (runtime, host-call variant): the extra time of one host call."""
    calls = {(r.workload, r.strategy, r.runtime): r.host_calls_per_run for r in rows
             if r.kind == "cell" and r.status == "ok"}
    by: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for q in ratios:
        n = calls.get((q.workload, q.strategy, q.runtime))
        if not q.strategy.startswith("host-call") or not n:
            continue
        extra = q.base_median_s * (q.ratio - 1.0)
        by[(q.runtime, q.strategy)].append((n, extra / n, q.ratio))
    out = []
    for (rt, s), xs in by.items():
        out.append(HostCallCost(rt, s, host_of(s, rt), len(xs),
                                round(statistics.median(x[0] for x in xs)),
                                statistics.median(x[1] for x in xs),
                                statistics.median(x[2] for x in xs)))
    return sorted(out, key=lambda c: (c.strategy, c.per_call_s))


@dataclass(frozen=True)
class DispatchShare:
    runtime: str
    language: str
    empty_call_s: float
    calls: float             # dispatches per inference, median over the cells
    median_share: float      # calls × empty call / inference, median over the cells
    max_share: float
    cells: int


def dispatch_shares(rows: Sequence[ResultRow],
                    noop_s: dict[str, float]) -> list[DispatchShare]:
    """Per runtime with a measured empty call: the embedding's share of each ok cell."""
    by: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in rows:
        if r.kind != "cell" or r.status != "ok" or not r.median_s or not r.calls_per_run \
                or r.runtime not in noop_s:
            continue
        by[r.runtime].append((r.calls_per_run, r.calls_per_run * noop_s[r.runtime] / r.median_s))
    out = []
    for rt, xs in by.items():
        shares = [s for _, s in xs]
        out.append(DispatchShare(rt, host_language(rt), noop_s[rt],
                                 statistics.median(n for n, _ in xs), statistics.median(shares),
                                 max(shares), len(xs)))
    return sorted(out, key=lambda d: d.median_share)


@dataclass(frozen=True)
class EmbeddedVsLinked:
    strategy: str
    embedded: str            # runtime spec driving the plan from Python
    linked: str              # the same engine running the plan as one linked program
    workloads: int
    ratio: float             # geometric mean over the workloads of embedded / linked
    ci_low: float            # its 95% CI (bootstrap over the paired samples)
    ci_high: float
    verdict: str             # as the strategy ratios judge (`ratio_verdict`)
    low: float               # smallest and largest per-workload ratio
    high: float
    paired: bool             # every workload's pair measured in one comparison group


def linked_twin(spec: str) -> str | None:
    """The embedded spec of a `driver=linked` runtime spec (None for any other spec)."""
    return without_param(spec, "driver", ("linked",))


def embedded_vs_linked(rows: Sequence[ResultRow], seed: int = 0) -> list[EmbeddedVsLinked]:
    """Per strategy and engine: how much slower driving the plan from the embedding is than
    the same plan as a linked program on the same engine. The two drivers of one engine
    share a comparison group (`Plugin.group_spec`), so each workload's ratio pairs their
    samples pass by pass; rows of two workers (an older run, `--no-groups`) fall back to
    the unpaired ratio of medians, and the row says so."""
    def twin(cell: CellName) -> CellName | None:
        rt = linked_twin(cell[2])
        return None if rt is None else (cell[0], cell[1], rt)

    by: dict[tuple[str, str, str], list[StrategyRatio]] = defaultdict(list)
    for linked, embedded in ((row, base) for base, row in twin_rows(rows, twin)):
        by[(embedded.runtime, linked.runtime, linked.strategy)].append(
            ratio_of(linked, embedded, seed=seed))
    out = []
    for (embedded_rt, linked_rt, s), qs in sorted(by.items()):
        g, lo, hi = geomean_paired(qs, seed)
        out.append(EmbeddedVsLinked(s, embedded_rt, linked_rt, len(qs), g, lo, hi,
                                    ratio_verdict(g, lo, hi), min(q.ratio for q in qs),
                                    max(q.ratio for q in qs), all(q.paired for q in qs)))
    return out

"""The report's first screen: which strategy, on which runtime, at what cost.

A strategy × runtime matrix of geometric-mean paired ratios to `shared` (with CI and
verdict colour), each strategy's copies, host calls and linear memory, its isolation
(declared by the strategy, and the probes' outcomes where the run has them), one sentence
per runtime, and the run's resolution. Computed from the rows by `harness.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.analysis.strategies import (
    BASELINE,
    RESOLUTION_MIN_S,
    THRESHOLD,
    MatrixCell,
    Resolution,
    StrategyRatio,
    ratio_text,
    resolution,
    runtime_sentence,
    strategy_matrix,
    strategy_ratios,
)
from harness.core.errors import ResultsError
from harness.core.fmt import fmt_bytes
from harness.store.manifest import requested_runtimes
from harness.store.rows import ResultRow
from reports.data import RunData
from reports.palette import strategy_order

ISOLATION_KIND = "isolation"


@dataclass(frozen=True)
class Cell:
    """One matrix cell as the page shows it."""

    head: str          # "+35% [+30%, +41%]", "baseline", "unsupported"
    css: str           # verdict or status class
    detail: str        # copies, host calls, memory, what did not run
    title: str         # hover text: per-workload verdicts, reasons


@dataclass(frozen=True)
class Answer:
    runtimes: list[str]
    strategies: list[str]
    cells: dict[tuple[str, str], Cell]
    isolation: dict[str, str]            # strategy -> declared (and measured) isolation
    sentences: list[str]
    resolution: Resolution
    ratios: list[StrategyRatio]
    paired: bool                         # every ratio paired within a comparison group
    threshold: float = THRESHOLD
    baseline: str = BASELINE
    min_s: float = RESOLUTION_MIN_S

    def get(self, strategy: str, runtime: str) -> Cell:
        return self.cells.get((strategy, runtime), Cell("–", "na", "", "not in this run"))


def result_rows(run: RunData) -> list[ResultRow]:
    """The run's final cell rows as typed rows (a row that does not parse is left out: the
    problems table lists what the file holds)."""
    out = []
    bench = {c.key for c in run.bench_cells}  # calibration cells are no workload
    for r in run.rows_of_kind("cell"):
        if (r.get("workload"), r.get("strategy"), r.get("runtime")) not in bench:
            continue
        try:
            out.append(ResultRow.from_dict(dict(r)))
        except ResultsError:
            continue
    return out


def _cell(m: MatrixCell) -> Cell:
    parts = []
    if m.bytes_copied:
        parts.append(f"{fmt_bytes(m.bytes_copied)} copied")
    if m.host_calls:
        parts.append(f"{m.host_calls:,.0f} host calls")
    if m.linear_bytes:
        parts.append(f"{fmt_bytes(m.linear_bytes)} linear")
    notrun = [f"{n} {status}" for status, (n, _) in m.missing.items()]
    title = "; ".join([*(f"{k}: {v} workloads" for k, v in sorted(m.verdicts.items())),
                       *(f"{s}: {why}" for s, (_, why) in m.missing.items())])
    head = ratio_text(m)
    if head is None:
        return Cell(m.verdict, "na", ", ".join(notrun), title)
    detail = " · ".join(parts + ([f"not run: {', '.join(notrun)}"] if notrun else []))
    return Cell(head, f"v-{m.verdict}", detail, title)


def isolation_text(manifest: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
                   ) -> dict[str, str]:
    """Per strategy: what it declares, and what the isolation probes measured when the run
    has their rows (the worst outcome over probes and runtimes)."""
    declared = {spec: str(info.get("isolation", "?"))
                for spec, info in (manifest.get("strategies") or {}).items()}
    measured: dict[str, set[str]] = {}
    for r in rows:
        if r.get("kind") == ISOLATION_KIND and r.get("status") == "ok":
            outcome = r.get("outcome") or (r.get("metrics") or {}).get("outcome")
            if outcome:
                measured.setdefault(str(r.get("strategy")), set()).add(str(outcome))
    out = {}
    for s in {*declared, *measured}:
        text = declared.get(s, "?")
        if s in measured:
            text += f" (probed: {', '.join(sorted(measured[s]))})"
        out[s] = text
    return out


def answer(run: RunData) -> Answer | None:
    """The first screen's content, or None when no strategy could be compared."""
    rows = result_rows(run)
    if not any(r.strategy == BASELINE and r.status == "ok" for r in rows):
        return None
    ratios = strategy_ratios(rows)
    matrix = strategy_matrix(rows, ratios)
    runtimes = requested_runtimes(run.manifest, [rt for rt in run.runtimes
                                                 if any(m.runtime == rt for m in matrix)])
    strategies = strategy_order(m.strategy for m in matrix)
    iso = isolation_text(run.manifest, run.rows)
    # declared isolating, and not caught leaking or corrupting by this run's probes
    isolating = sorted({s.split(":")[0] for s, text in iso.items()
                        if not text.startswith(("none", "?"))
                        and "leaked" not in text and "corrupted" not in text})
    return Answer(runtimes, strategies, {(m.strategy, m.runtime): _cell(m) for m in matrix},
                  iso, [runtime_sentence(rt, matrix, isolating) for rt in runtimes],
                  resolution(ratios), ratios, all(q.paired for q in ratios))


@dataclass(frozen=True)
class WorkloadRatios:
    workload: str
    per_runtime: dict[str, list[StrategyRatio]]


def per_workload(ans: Answer) -> list[WorkloadRatios]:
    """The paired ratios behind the matrix, workload by workload."""
    out: dict[str, dict[str, list[StrategyRatio]]] = {}
    for q in ans.ratios:
        out.setdefault(q.workload, {}).setdefault(q.runtime, []).append(q)
    for per_rt in out.values():
        for qs in per_rt.values():
            qs.sort(key=lambda q: q.ratio if math.isfinite(q.ratio) else math.inf)
    return [WorkloadRatios(w, per_rt) for w, per_rt in out.items()]

"""The answer in the terminal: the strategy × runtime matrix a run ends with.

Each cell: the geometric-mean paired ratio to `shared` over the run's workloads with its
95% CI, coloured by verdict, then what the plans predict per inference (bytes copied, host
calls). Under it one sentence per runtime, derived from the numbers, and the run's
resolution (median CI half-width of the paired ratios).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.strategies import (
    BASELINE,
    RESOLUTION_MIN_S,
    THRESHOLD,
    MatrixCell,
    ratio_text,
    resolution,
    runtime_sentence,
    strategy_matrix,
    strategy_ratios,
)
from harness.core.fmt import fmt_bytes_short, fmt_count
from harness.store.manifest import requested_runtimes
from harness.store.rows import ResultRow

VERDICT_STYLE = {"faster": "bold green", "slower": "bold red", "same": "cyan",
                 "unsure": "yellow", "baseline": "bold"}


def isolating(strategies: Mapping[str, Any]) -> list[str]:
    """Strategy names whose executables cannot reach each other's private state, from the
    manifest's `strategies` section."""
    return sorted({spec.split(":")[0] for spec, info in strategies.items()
                   if info.get("isolation", "none") != "none"})


def cell_text(m: MatrixCell) -> str:
    style = VERDICT_STYLE.get(m.verdict, "dim")
    text = ratio_text(m)
    if text is None:
        _, why = next(iter(m.missing.values()), (0, ""))
        return f"[{style}]{m.verdict}[/]" + (f" [dim]({why[:40]})[/]" if why else "")
    head = f"[{style}]{text}[/]"
    counts = []
    if m.bytes_copied:
        counts.append(f"{fmt_bytes_short(int(m.bytes_copied))}B copied")
    if m.host_calls:
        counts.append(f"{fmt_count(int(m.host_calls))} calls")
    if m.missing:
        counts.append(", ".join(f"{n} {s}" for s, (n, _) in m.missing.items()))
    return head + (f"\n[dim]{'; '.join(counts)}[/]" if counts else "")


def matrix_table(matrix: Sequence[MatrixCell], runtimes: Sequence[str]) -> Table:
    strategies = sorted(dict.fromkeys(m.strategy for m in matrix),
                        key=lambda s: (s != BASELINE, s))
    table = Table(title=f"time per inference vs {BASELINE}, geometric mean over workloads "
                        f"(paired, 95% CI; same = within ±{THRESHOLD:.0%})",
                  title_justify="left", show_lines=True)
    table.add_column("strategy")
    for rt in runtimes:
        table.add_column(rt)
    index = {(m.strategy, m.runtime): m for m in matrix}
    for s in strategies:
        table.add_row(s, *(cell_text(index[(s, rt)]) if (s, rt) in index else "-"
                           for rt in runtimes))
    return table


def print_answer(rows: Sequence[ResultRow], manifest: Mapping[str, Any],
                 console: Console | None = None) -> None:
    """The matrix, one sentence per runtime, and the run's resolution."""
    con = console or Console(highlight=False, width=220)
    ratios = strategy_ratios(rows)
    matrix = strategy_matrix(rows, ratios)
    if not matrix:
        return
    runtimes = requested_runtimes(manifest, (m.runtime for m in matrix))
    con.print(matrix_table(matrix, runtimes))
    iso = isolating(manifest.get("strategies", {}))
    for rt in runtimes:
        con.print(runtime_sentence(rt, matrix, iso))
    res = resolution(ratios)
    if res.ratios:
        con.print(f"resolution: median 95% CI half-width {res.median_half_width:.1%} over "
                  f"{res.ratios} paired ratios of cells >= {RESOLUTION_MIN_S * 1e6:.0f} µs "
                  f"(goal <= 3%); verdicts: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(res.verdicts.items())))

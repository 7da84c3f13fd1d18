"""Terminal output: progress while running, the summary table after."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from harness.results import ResultRow
from harness.stats import summarize

STATUS_STYLE = {"ok": "green", "invalid": "bold red", "crashed": "red", "trapped": "red",
                "oom": "red", "timeout": "red", "unsupported": "yellow", "unavailable": "yellow",
                "skipped": "dim"}


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_count(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return str(n)


def fmt_metrics(metrics: dict[str, object]) -> str:
    """Workload-reported figures, compact: fractions named like rates as percentages."""
    parts = []
    for k, v in metrics.items():
        if isinstance(v, float) and ("accuracy" in k or "agreement" in k):
            parts.append(f"{k.replace('_', ' ')} {v:.1%}")
        elif isinstance(v, (int, float)):
            parts.append(f"{k.replace('_', ' ')} {v:.4g}")
    return ", ".join(parts)


def summary_table(rows: Sequence[ResultRow], title: str = "results") -> Table:
    table = Table(title=title, title_justify="left")
    for col, kw in (("workload", {}), ("strategy", {}), ("runtime", {}), ("status", {}),
                    ("median", {"justify": "right"}), ("spread (95% CI)", {"justify": "right"}),
                    ("GFLOP/s", {"justify": "right"}), ("copied/run", {"justify": "right"}),
                    ("host calls/run", {"justify": "right"}), ("note", {})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in rows:
        style = STATUS_STYLE.get(r.status, "")
        median = spread = gflops = "-"
        if r.status == "ok" and r.samples_s:
            s = summarize(r.samples_s)
            median = fmt_time(s.median)
            spread = f"{fmt_time(s.ci_low)}–{fmt_time(s.ci_high)} (cv {s.cv:.1%})"
            if r.flops and s.median:
                gflops = f"{r.flops / s.median / 1e9:.2f}"
        note = r.reason if r.status != "ok" else fmt_metrics(r.metrics)
        table.add_row(r.workload, r.strategy, r.runtime, f"[{style}]{r.status}[/]", median,
                      spread, gflops, fmt_count(r.bytes_copied_per_run) + "B"
                      if r.bytes_copied_per_run is not None else "-",
                      fmt_count(r.host_calls_per_run), note[:120])
    return table


def print_summary(rows: Sequence[ResultRow], console: Console | None = None) -> None:
    con = console or Console(file=sys.stdout, highlight=False, width=200)
    con.print(summary_table(rows))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    con.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))

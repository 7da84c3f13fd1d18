"""Terminal output: progress while running, the summary table after."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.analysis.compare import round_sizes
from harness.analysis.stats import group_medians, summarize
from harness.core.fmt import fmt_bytes_short, fmt_count, fmt_time
from harness.store.rows import OVERHEAD_FACTOR, ResultRow

STATUS_STYLE = {"ok": "green", "invalid": "bold red", "crashed": "red", "trapped": "red",
                "oom": "red", "timeout": "red", "unsupported": "yellow", "unavailable": "yellow",
                "skipped": "dim"}


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


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
                    ("n", {"justify": "right"}),
                    ("GFLOP/s", {"justify": "right"}), ("copied/run", {"justify": "right"}),
                    ("host calls/run", {"justify": "right"}),
                    ("RSS+", {"justify": "right"}), ("linear", {"justify": "right"}),
                    ("reserved", {"justify": "right"}), ("note", {})):
        table.add_column(col, **kw)  # type: ignore[arg-type]
    for r in rows:
        if r.kind not in ("cell", "noop"):
            continue
        style = STATUS_STYLE.get(r.status, "")
        median = spread = gflops = n = "-"
        if r.status == "ok" and r.samples_s:
            s = summarize(r.samples_s)
            median = fmt_time(s.median)
            spread = f"{fmt_time(s.ci_low)}–{fmt_time(s.ci_high)} (cv {s.cv:.1%})"
            n = f"{len(r.rounds) or 1}×{s.n // max(len(r.rounds), 1)}"
            if r.flops and s.median:
                gflops = f"{r.flops / s.median / 1e9:.2f}"
        notes = [r.reason] if r.status != "ok" else []
        if r.status == "ok" and r.metrics:
            notes.append(fmt_metrics(r.metrics))  # model-level figures (accuracy, ...)
        if r.kind == "noop":
            notes.append("calibration: timer + one empty call")
        if r.overhead_dominated:
            notes.append(f"overhead-dominated (< {OVERHEAD_FACTOR:g}× noop "
                         f"{fmt_time(r.overhead_s)})")
        if r.stats.get("outliers"):
            notes.append(f"{r.stats['outliers']} outliers (kept)")
        if r.timing.get("clock", "wall") != "wall":
            notes.append(f"{r.timing['clock']} clock")
        if r.timing.get("steady") is False:
            notes.append("warm-up hit its cap before steady")
        mem = r.memory
        table.add_row(r.workload, r.strategy, r.runtime, f"[{style}]{r.status}[/]", median,
                      spread, n, gflops, fmt_count(r.bytes_copied_per_run) + "B"
                      if r.bytes_copied_per_run is not None else "-",
                      fmt_count(r.host_calls_per_run),
                      fmt_bytes_short(mem.get("peak_rss_over_baseline",
                                              mem.get("rss_load_delta"))),
                      fmt_bytes_short(mem.get("linear_bytes")),
                      fmt_bytes_short(mem.get("vms_reserved")), "; ".join(notes)[:140])
    return table


def overhead_table(runtimes: dict[str, dict[str, Any]]) -> Table:
    """Per runtime: one empty call into wasm, one empty host call out (from run.json)."""
    table = Table(title="embedding overhead (per call)", title_justify="left")
    for col in ("runtime", "version", "empty wasm call", "empty host call", "note"):
        table.add_column(col, justify="right" if "call" in col else "left")
    for spec, info in runtimes.items():
        ov = info.get("overhead", {})
        table.add_row(spec, str(info.get("version", "")), fmt_time(ov.get("call_s")),
                      fmt_time(ov.get("host_call_s")),
                      "" if ov.get("status") == "ok" else
                      f"{ov.get('status', '-')}: {ov.get('message', '')}"[:100])
    return table


def breakdown_table(rows: Sequence[ResultRow]) -> Table | None:
    """Per-inference time by step kind, from the instrumented pass (`--breakdown`)."""
    with_bd = [r for r in rows if r.kind == "cell" and r.breakdown]
    if not with_bd:
        return None
    table = Table(title="per-inference breakdown (instrumented pass; timers add ~0.1 µs/step)",
                  title_justify="left")
    for col in ("cell", "write", "copy", "call", "of which host calls", "read", "total"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for r in with_bd:
        b = r.breakdown
        table.add_row(r.cell, *(fmt_time(b.get(k)) for k in (
            "write_s", "copy_s", "call_s", "host_call_s", "read_s", "total_s")))
    return table


def round_spread(row: ResultRow) -> tuple[float, float] | None:
    """(median within-round CV, slowest / fastest round median - 1) of a cell whose
    samples came from two or more rounds; None for fewer rounds or samples that do not add
    up to its rounds' counts (an imported result)."""
    sizes = round_sizes(row)
    if sizes is None or min(sizes) < 2:
        return None
    x = np.asarray(row.samples_s, dtype=np.float64)
    cvs = [part.std(ddof=1) / part.mean() for part in np.split(x, np.cumsum(sizes)[:-1])]
    medians = group_medians(x, sizes)
    return float(np.median(cvs)), float(medians.max() / medians.min() - 1)


def cv_distribution(rows: Sequence[ResultRow], min_median_s: float = 1e-3) -> str | None:
    """Lines: the distribution of CVs (sd / mean) of ok cells whose median is at least
    `min_median_s`, of their robust CVs (1.4826 MAD / median), which bursts of
    interference from other tenants move far less, and, for cells of several rounds,
    what the CV is made of: the spread inside a round and between rounds (fresh workers,
    seconds to minutes apart)."""
    cells = [r for r in rows
             if r.kind == "cell" and r.status == "ok" and r.samples_s
             and r.median_s is not None and r.median_s >= min_median_s]
    stats = [summarize(r.samples_s) for r in cells]
    if not stats:
        return None
    split = [f for f in map(round_spread, cells) if f is not None]

    def dist(values: list[float]) -> str:
        q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0])
        return (f"min {q[0]:.2%}  q1 {q[1]:.2%}  median {q[2]:.2%}  q3 {q[3]:.2%}  "
                f"max {q[4]:.2%}")

    which = f"cells with median >= {fmt_time(min_median_s)}" if min_median_s else "all ok cells"
    target = "  (target: median <= 3%)" if min_median_s >= 1e-3 else ""
    lines = [f"CV of {which} (n={len(stats)}): {dist([s.cv for s in stats])}{target}",
             f"robust CV (1.4826 MAD / median), same cells: {dist([s.rcv for s in stats])}"]
    if split:
        lines += [f"  of which: within-round CV (median over a cell's rounds), "
                  f"n={len(split)}: {dist([w for w, _ in split])}",
                  f"  and between rounds (slowest / fastest round median - 1), same cells: "
                  f"{dist([b for _, b in split])}"]
    return "\n".join(lines)


def print_summary(rows: Sequence[ResultRow], console: Console | None = None,
                  warnings: Sequence[str] = ()) -> None:
    con = console or Console(file=sys.stdout, highlight=False, width=220)
    con.print(summary_table(rows))
    bd = breakdown_table(rows)
    if bd is not None:
        con.print(bd)
    counts: dict[str, int] = {}
    for r in rows:
        if r.kind == "cell":
            counts[r.status] = counts.get(r.status, 0) + 1
    con.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    for r in rows:
        if r.kind == "baseline" and r.status == "ok" and "peak_rss" not in r.memory:
            con.print(f"memory baseline ({r.runtime}): the worker cannot see its process's "
                      "memory (RSS figures left out)")
        elif r.kind == "baseline" and r.status == "ok":
            con.print(f"memory baseline ({r.runtime}, empty-plan worker): peak RSS "
                      f"{fmt_bytes_short(r.memory.get('peak_rss'))}B, virtual "
                      f"{fmt_bytes_short(r.memory.get('vms_after_load'))}B; RSS+ = cell peak "
                      "RSS minus this (in a comparison group: what loading the variant added); "
                      "reserved = virtual memory the plan's load reserved")
    for line in (cv_distribution(rows) or "no ok cell has a median of at least 1 ms",
                 cv_distribution(rows, 0.0)):
        if line:
            con.print(line)
    for w in warnings:
        con.print(f"[yellow]warning:[/] {w}")

"""`membench history`: every run under results/, per machine and cell, with step detection."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.history import detect_steps, load_history
from harness.cli.compare_cmd import parse_fraction
from harness.core.fmt import fmt_time
from harness.store.rows import ensure_out_dir


def register(sub: Any) -> None:
    p = sub.add_parser("history", help="trends and step changes across all stored runs")
    p.add_argument("--results", type=Path, default=Path("results"),
                   help="directory holding run directories (default: results/)")
    p.add_argument("--threshold", default="5%", help="smallest step up reported (default 5%%)")
    p.add_argument("--out", type=Path, help="where trend PNGs go (default: RESULTS/history)")
    p.add_argument("--no-plots", action="store_true", help="skip the trend PNGs")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    threshold = parse_fraction(args.threshold)
    out_dir = args.out or (args.results / "history")
    t0 = time.perf_counter()
    cells, nruns = load_history(args.results)
    read_s = time.perf_counter() - t0
    console = Console(highlight=False, width=200)
    table = Table(title=f"history: {nruns} runs, {len(cells)} cell series "
                        f"(read in {read_s:.2f} s)", title_justify="left")
    for col in ("machine", "cell", "runs", "latest", "steps up (run, change)"):
        table.add_column(col)
    if not args.no_plots and cells:
        ensure_out_dir(out_dir)
    from reports.trend import safe_name, trend_plot

    for h in cells:
        steps = detect_steps(h, threshold)
        desc = "; ".join(f"{s.run_id} ({(s.ratio - 1) * 100:+.1f}%"
                         + (f", {s.commit[:10]}" if s.commit else "") + ")" for s in steps)
        table.add_row(h.machine, h.cell, str(len(h.points)), fmt_time(h.points[-1].median_s),
                      f"[red]{desc}[/]" if steps else "-")
        if not args.no_plots:
            trend_plot(h, steps, out_dir / f"{safe_name(h.machine + '_' + h.cell)}.png")
    console.print(table)
    if not args.no_plots and cells:
        print(f"trend plots: {out_dir}", file=sys.stderr)
    return 0

"""`membench compare BASE_RUN CURRENT_RUN`: per-cell verdicts; exit 1 on a regression."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.compare import RunComparison, compare_runs
from harness.core.errors import MembenchError, SpecError
from harness.core.fmt import fmt_time
from harness.store.manifest import read_manifest
from harness.store.rows import ensure_out_dir, read_rows

STYLE = {"slower": "bold red", "faster": "green", "unchanged": "dim", "unsure": "yellow"}


def parse_fraction(text: str) -> float:
    """'5%' or '0.05' -> 0.05."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SpecError(f"expected a fraction like 5% or 0.05, got {text!r}") from None
    if not 0 < value < 10:
        raise SpecError(f"threshold must be positive (and sensible), got {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser("compare", help="compare two runs with a statistical verdict",
                       description="Compare CURRENT_RUN against BASE_RUN cell by cell. "
                                   "Exit 0: no regression; 1: at least one cell slower; "
                                   "2: usage or data error.")
    p.add_argument("base", type=Path, metavar="BASE_RUN")
    p.add_argument("current", type=Path, metavar="CURRENT_RUN")
    p.add_argument("--threshold", default="5%", help="smallest change that matters (default 5%%)")
    p.add_argument("--alpha", type=float, default=0.01,
                   help="significance level after Benjamini-Hochberg correction (default 0.01)")
    p.add_argument("--out", type=Path, help="where compare.md/html go (default: CURRENT_RUN)")
    p.add_argument("--allow-cross-machine", action="store_true",
                   help="compare runs from different machines anyway")
    p.set_defaults(func=main)


def check_same_machine(base: dict[str, Any], current: dict[str, Any], allow: bool) -> str | None:
    """None if both runs come from the same kind of machine; else the reason (or a warning)."""
    fb, fc = base.get("fingerprint", {}), current.get("fingerprint", {})
    kb, kc = fb.get("machine_id"), fc.get("machine_id")
    if kb == kc:
        return None
    why = (f"runs come from different machines ({fb.get('cpu_model')} × {fb.get('cpu_count')} "
           f"vs {fc.get('cpu_model')} × {fc.get('cpu_count')}): timings are not comparable")
    if not allow:
        raise MembenchError(why + "; pass --allow-cross-machine to compare anyway")
    return why


def print_table(cmp: RunComparison, console: Console) -> None:
    t = Table(title=f"compare (threshold ±{cmp.threshold:.0%}, alpha {cmp.alpha:g}, BH)",
              title_justify="left")
    for col in ("cell", "base", "current", "change", "95% CI", "q slower", "n", "verdict"):
        t.add_column(col, justify="left" if col in ("cell", "verdict") else "right")
    for c in sorted(cmp.cells, key=lambda c: -c.ratio):
        t.add_row(c.cell, fmt_time(c.base_median), fmt_time(c.current_median),
                  f"{(c.ratio - 1) * 100:+.1f}%",
                  f"{(c.ci_low - 1) * 100:+.1f}% … {(c.ci_high - 1) * 100:+.1f}%",
                  f"{c.q_slower:.3g}", c.units, f"[{STYLE[c.verdict]}]{c.verdict}[/]")
    console.print(t)
    for k in cmp.only_base:
        console.print(f"only in base: {' | '.join(k)}")
    for k in cmp.only_current:
        console.print(f"only in current: {' | '.join(k)}")
    for k, sb, sc in cmp.not_comparable:
        console.print(f"not comparable: {' | '.join(k)} (base {sb}, current {sc})")
    for note in cmp.notes:
        console.print(f"note: {note}")
    console.print(", ".join(f"{cmp.count(v)} {v}" for v in ("slower", "faster", "unchanged",
                                                           "unsure")))


def main(args: argparse.Namespace) -> int:
    threshold = parse_fraction(args.threshold)
    if not 0 < args.alpha < 1:
        raise SpecError(f"--alpha must be in (0, 1), got {args.alpha}")
    mb, mc = read_manifest(args.base), read_manifest(args.current)
    warning = check_same_machine(mb, mc, args.allow_cross_machine)
    out_dir = ensure_out_dir(args.out or args.current)
    cmp = compare_runs(read_rows(args.base), read_rows(args.current), threshold, args.alpha)
    if not cmp.cells and not cmp.not_comparable:
        raise MembenchError("the two runs have no cell in common")
    console = Console(highlight=False, width=200)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    print_table(cmp, console)
    from reports.comparison import write_outputs

    out = write_outputs(cmp, str(mb.get("run_id", args.base.name)),
                        str(mc.get("run_id", args.current.name)), out_dir)
    print(f"wrote {out['markdown']} and {out['html']}", file=sys.stderr)
    return 1 if cmp.regressed else 0

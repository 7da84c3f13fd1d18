"""`membench stability BASE CURRENT`: how well two runs of the same cells agree.

Prints, per cell, the ratio of medians with its 95% CI; the fraction of cells whose CI
contains 1 (target: at least 95% for two back-to-back runs of the same code); each run's
CV distribution and load. Exit 0 when the target is met, 1 when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.stability import agreement, fraction_within
from harness.cli.console import cv_distribution
from harness.core.errors import MembenchError
from harness.core.fmt import fmt_time
from harness.results.manifest import read_manifest
from harness.results.rows import read_rows

TARGET = 0.95


def register(sub: Any) -> None:
    p = sub.add_parser("stability", help="run-to-run agreement of two runs of the same cells")
    p.add_argument("base", type=Path, metavar="BASE_RUN")
    p.add_argument("current", type=Path, metavar="CURRENT_RUN")
    p.set_defaults(func=main)


def _load(manifest: dict[str, Any]) -> str:
    fp = manifest.get("fingerprint", {})
    return f"load {fp.get('loadavg_1m', '?')} (1 min) / {fp.get('loadavg_5m', '?')} (5 min)"


def main(args: argparse.Namespace) -> int:
    base, cur = read_rows(args.base), read_rows(args.current)
    cells = agreement(base, cur)
    if not cells:
        raise MembenchError("the two runs have no `ok` cell in common")
    con = Console(file=sys.stdout, highlight=False, width=200)
    table = Table(title="run-to-run agreement (ratio = current / base median)",
                  title_justify="left")
    for col in ("cell", "base", "current", "ratio", "95% CI", "1 in CI"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for c in cells:
        table.add_row(c.cell, fmt_time(c.base_median), fmt_time(c.current_median),
                      f"{c.ratio:.3f}", f"{c.ci_low:.3f}–{c.ci_high:.3f}",
                      "[green]yes[/]" if c.within else "[red]no[/]")
    con.print(table)
    for label, path, rows in (("base", args.base, base), ("current", args.current, cur)):
        line = cv_distribution(rows) or "no cell with median >= 1 ms"
        con.print(f"{label}: {line}; {_load(read_manifest(path))}")
    frac = fraction_within(cells)
    n_in = sum(c.within for c in cells)
    n_rounds = sum(1 for c in cells if c.unit == "round")
    con.print(f"median ratio within its 95% CI: {n_in}/{len(cells)} cells = {frac:.1%} "
              f"(target >= {TARGET:.0%}; as `membench compare` computes it: two-level "
              f"bootstrap over rounds for the {n_rounds} cells with 2+ rounds a side, flat "
              "bootstrap over samples for the rest)")
    flat = agreement(base, cur, by_round=False)
    con.print(f"for contrast, the flat bootstrap over samples everywhere (leaves out the "
              f"worker-to-worker spread): {sum(c.within for c in flat)}/{len(flat)} cells = "
              f"{fraction_within(flat):.1%}")
    return 0 if frac >= TARGET else 1

"""`membench stability BASE CURRENT`: how well two runs of the same cells agree.

Two questions, for two back-to-back runs of the same suite:

* the strategy comparison (when the runs have it): do the paired ratios to `shared` agree
  within their CIs (the difference of the two log ratios inside its 95% interval) on at
  least 95% of them, and do the runs give the same verdict on at least 95%? And each run's
  resolution: the median CI half-width of its paired ratios over cells of >= 100 µs
  (goal <= 3%);
* per cell, the ratio of medians with its 95% CI; the fraction of cells whose CI contains
  1 (target: at least 95%); each run's CV distribution and load.

Exit 0 when every target that applies is met, 1 when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.analysis.counts import COUNT_CV_TARGET, count_agreement
from harness.analysis.stability import agreement, fraction_within
from harness.analysis.strategies import (
    RESOLUTION_MIN_S,
    ratio_agreement,
    resolution,
    strategy_ratios,
)
from harness.cli.console import cv_distribution
from harness.core.errors import MembenchError
from harness.core.fmt import fmt_time
from harness.store.manifest import read_manifest
from harness.store.rows import read_rows

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
    met = frac >= TARGET
    for agreed in count_agreement(base, cur):
        what = ("wasm operators (fuel)" if agreed.measure == "fuel"
                else "instructions (callgrind)")
        con.print(f"counts, {what}: {agreed.identical}/{agreed.cells} cells identical in both "
                  f"runs; largest CV {agreed.worst_cv:.4%} (target <= {COUNT_CV_TARGET:.1%})")
    ratios_met = strategy_agreement(con, base, cur)
    return 0 if met and ratios_met is not False else 1


def strategy_agreement(con: Console, base: list[Any], cur: list[Any]) -> bool | None:
    """The strategy comparison's reproducibility; None when the runs have no ratios."""
    a, b = strategy_ratios(base), strategy_ratios(cur)
    agree = ratio_agreement(a, b)
    if not agree.common:
        return None
    con.print(f"strategy ratios to shared, {agree.common} in both runs: agree within their CIs "
              f"(the CIs overlap) {agree.within}/{agree.common} = {agree.within_fraction:.1%}, "
              f"same verdict {agree.same_verdict}/{agree.common} = "
              f"{agree.verdict_fraction:.1%} (targets >= {TARGET:.0%}); stricter, the "
              f"difference inside its own 95% interval: {agree.strict}/{agree.common} = "
              f"{agree.strict_fraction:.1%}")
    goals = agree.within_fraction >= TARGET and agree.verdict_fraction >= TARGET
    for label, qs in (("base", a), ("current", b)):
        res = resolution(qs)
        if res.ratios:
            con.print(f"{label} resolution: median 95% CI half-width "
                      f"{res.median_half_width:.1%} over {res.ratios} paired ratios of cells >= "
                      f"{RESOLUTION_MIN_S * 1e6:.0f} µs (goal <= 3%)")
            goals = goals and res.median_half_width <= 0.03
    worst = sorted(agree.disagreeing, key=lambda xy: -abs(xy[0].ratio / xy[1].ratio - 1))[:8]
    for x, y in worst:
        con.print(f"  apart: {x.workload} | {x.strategy} | {x.runtime}: "
                  f"{x.ratio:.3f} [{x.ci_low:.3f}, {x.ci_high:.3f}] vs "
                  f"{y.ratio:.3f} [{y.ci_low:.3f}, {y.ci_high:.3f}]")
    return goals

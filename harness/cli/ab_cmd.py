"""`membench ab --a SPEC --b SPEC`: run both sides interleaved, then compare (exit 1 if B is slower)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.analysis.counts import CountChange, compare_counts
from harness.cli.compare_cmd import parse_fraction, print_table
from harness.cli.console import print_summary, stderr_console
from harness.cli.run_cmd import (
    DEFAULT_OUT,
    OLD_AB,
    add_selection_args,
    build_request,
    refuse_resume_options,
)
from harness.core.errors import SpecError
from harness.plugins.spec import parse_spec
from harness.run.ab import AB_ROUNDS, AB_SAMPLES, ab_cells, ab_request, compare_sides
from harness.run.external import membench_of
from harness.run.pipeline import execute
from harness.run.request import Registries
from harness.run.resume import ab_state, load_resume
from harness.run.rundir import new_run_id, prepare_run_dir


def register(sub: Any) -> None:
    p = sub.add_parser("ab", help="A/B: run two runtime specs interleaved and compare them",
                       description="Run every cell on side A and side B, alternating, on this "
                                   "machine now; then compare B against A. Exit 0: no "
                                   "regression; 1: B slower somewhere; 2: usage error.")
    p.add_argument("--a", metavar="SPEC", help="base runtime spec (required unless --resume)")
    p.add_argument("--b", metavar="SPEC", help="candidate runtime spec (required unless --resume)")
    add_selection_args(p, runtimes=False)
    p.add_argument("--a-repo", type=Path, metavar="DIR",
                   help="run side A with another checkout's membench (e.g. the PR base)")
    p.add_argument("--b-repo", type=Path, metavar="DIR",
                   help="run side B with another checkout's membench")
    p.add_argument("--threshold", default="5%", help="smallest change that matters (default 5%%)")
    p.add_argument("--count-threshold", default="1%",
                   help="with --measure fuel or insts: the smallest growth of a cell's count that "
                        "fails the A/B (default 1%%); time is then reported, not gated on")
    p.add_argument("--alpha", type=float, default=0.01, help="significance after BH (default 0.01)")
    p.add_argument("--inject-slowdown", metavar="PCT",
                   help="make side B do real extra work of PCT of each inference (e.g. 10%%), "
                        "to check that a known regression is detected")
    p.add_argument("--no-lockstep", action="store_true",
                   help="run each round's A and B workers one after the other instead of "
                        "together with their samples alternating")
    p.add_argument("--resume", metavar="RUN_DIR", type=Path,
                   help="finish an interrupted A/B run (same sides, cells and settings, from "
                        "its run.json), then compare")
    p.set_defaults(func=main)
    p.epilog = (f"Without --rounds, each side runs at least {AB_ROUNDS} rounds (fresh workers), "
                f"and without --repeat at least {AB_SAMPLES} samples a round: the comparison's "
                "unit is the round")


def side_b_spec(b: str, inject: str | None) -> str:
    if not inject:
        return b
    pct = round(parse_fraction(inject) * 100)
    spec = parse_spec(b)
    if "slowdown" in spec.as_dict():
        raise SpecError("--inject-slowdown and a slowdown= parameter on --b both given")
    return str(spec) + ("," if spec.params else ":") + f"slowdown={pct}"


#: options that choose the sides: an A/B run resumed takes them from its run.json
RESUME_TAKES_AB = ("a", "b", "a_repo", "b_repo", "inject_slowdown", "no_lockstep")


def main(args: argparse.Namespace) -> int:
    threshold = parse_fraction(args.threshold)
    if not 0 < args.alpha < 1:
        raise SpecError(f"--alpha must be in (0, 1), got {args.alpha}")
    regs = Registries.from_entry_points()
    done = None
    if args.resume:
        refuse_resume_options(args, args.resume, RESUME_TAKES_AB)
        req, cells, done = load_resume(args.resume, regs)
        state, sides = ab_state(cells, done), req.extra.get("ab")
        if state == "old-ab":
            raise SpecError(OLD_AB.format(run=args.resume))
        if state != "ab" or not isinstance(sides, dict):
            raise SpecError(f"{args.resume} is not an A/B run: finish it with "
                            f"`membench run --resume {args.resume}`")
        for repo in {c.repo for c in cells if c.repo is not None}:
            membench_of(repo)  # refuse before any work when the checkout is gone
        a, b, run_dir = str(sides.get("a", "A")), str(sides.get("b", "B")), args.resume
    else:
        if not (args.a and args.b):
            raise SpecError("ab needs --a SPEC and --b SPEC (or --resume RUN_DIR)")
        args.runtime = []
        req = ab_request(build_request(args), rounds_given=args.rounds is not None,
                         lockstep=not args.no_lockstep, samples_given=args.repeat is not None)
        a, b = args.a, side_b_spec(args.b, args.inject_slowdown)
        for repo in (args.a_repo, args.b_repo):
            if repo is not None:
                membench_of(repo)  # refuse before any work when the checkout is not set up
        cells = ab_cells(req, a, b, regs, args.a_repo, args.b_repo)
        # the sides' labels, for the comparison of a resumed run
        req = replace(req, extra={**req.extra, "ab": {"a": a, "b": b}})
        run_dir = prepare_run_dir(args.out or DEFAULT_OUT, new_run_id())
    con = stderr_console()
    con.print(f"membench ab: {len(cells)} cells (A = {a}, B = {b}) -> {run_dir}")
    try:
        rows = execute(cells, run_dir, req, None, done)
    except KeyboardInterrupt:
        print(f"membench: A/B run interrupted; finish it with: membench ab --resume {run_dir}",
              file=sys.stderr)
        raise
    print_summary(rows)
    cmp = compare_sides(rows, threshold, args.alpha)
    print_table(cmp, Console(highlight=False, width=200))
    from reports.comparison import write_outputs

    out = write_outputs(cmp, f"A: {a}", f"B: {b}", run_dir)
    print(f"wrote {out['markdown']}", file=sys.stderr)
    if set(req.settings.measure) & {"fuel", "insts", "cache"}:
        # counts are deterministic: they gate; the time verdict above is informational
        # (`cache` counts the instructions too: they gate, the simulated misses do not)
        asked = set(req.settings.measure) | ({"insts"} if "cache" in req.settings.measure
                                             else set())
        changes = [c for c in compare_counts(rows, parse_fraction(args.count_threshold))
                   if c.measure in asked]
        print_count_table(changes, Console(highlight=False, width=200))
        with Path(out["markdown"]).open("a", encoding="utf-8") as md:
            md.write(count_markdown(changes))
        return 1 if any(c.verdict == "more" for c in changes) else 0
    return 1 if cmp.regressed else 0


def count_markdown(changes: list[CountChange]) -> str:
    """The count verdicts as a Markdown section of compare.md (the PR summary)."""
    lines = ["", "## Counts per inference, B against A (the gate; time above is "
             "informational)", "", "| workload | strategy | count | A | B | B / A | verdict |",
             "|---|---|---|---:|---:|---:|---|"]
    for c in changes:
        lines.append(f"| {c.workload} | {c.strategy} | {c.measure} | "
                     f"{'–' if c.a is None else f'{c.a:,}'} | "
                     f"{'–' if c.b is None else f'{c.b:,}'} | "
                     f"{'–' if c.ratio is None else f'{c.ratio:.4f}'} | {c.verdict}"
                     f"{f' ({c.reason})' if c.reason else ''} |")
    return "\n".join(lines) + "\n"


def print_count_table(changes: list[CountChange], console: Console) -> None:
    from rich.table import Table

    table = Table(title="counts per inference, B against A (the gate: counts are "
                        "deterministic; the time verdict above is informational)")
    for col in ("workload", "strategy", "count", "A", "B", "B / A", "verdict"):
        table.add_column(col)
    for c in changes:
        table.add_row(c.workload, c.strategy, c.measure, "–" if c.a is None else f"{c.a:,}",
                      "–" if c.b is None else f"{c.b:,}",
                      "–" if c.ratio is None else f"{c.ratio:.4f}",
                      c.verdict + (f" ({c.reason})" if c.reason else ""))
    console.print(table)

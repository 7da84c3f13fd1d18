"""`membench report RUN_DIR`: report.html, PNG figures and results.csv for a run.

Also called at the end of `membench run`. The report lives in the `reports` package and
needs the `report` extra (jinja2, matplotlib, pandas); this module touches it only through
`reports.build.write_report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness.core.errors import MembenchError


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write report.html, figures and results.csv for a run",
                       description="Render RUN_DIR's results as a self-contained HTML report "
                                   "with PNG figures and a tidy results.csv beside it. Works "
                                   "on partial and interrupted runs.")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, help="where the report goes (default: RUN_DIR)")
    p.set_defaults(func=main)


def make_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the report; return the path of report.html."""
    try:
        from reports.build import write_report
    except ImportError as exc:
        raise MembenchError("the report needs the 'report' extra "
                            f"(pip install 'wasm-membench[report]'): {exc}") from None
    return write_report(run_dir, out).html


def report_after_run(run_dir: Path) -> None:
    """The hook `membench run` calls: never fails the run, says where the report is."""
    try:
        page = make_report(run_dir)
    except Exception as exc:  # a report problem must not turn a finished run into an error
        print(f"membench: report not written: {exc}", file=sys.stderr)
        return
    print(f"report: {page}", file=sys.stderr)


def main(args: argparse.Namespace) -> int:
    page = make_report(args.run_dir, args.out)
    print(f"report: {page}")
    return 0

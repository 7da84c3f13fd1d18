"""`membench merge RUN_DIR...`: join shards of one suite into one run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.store.merge import merge_runs


def register(sub: Any) -> None:
    p = sub.add_parser("merge", help="join shards of one suite into one run")
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="where the merged run directory is created (default: results/)")
    p.add_argument("--allow-mixed", action="store_true",
                   help="merge shards from different suites, commits or machines anyway")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    target = merge_runs(args.runs, args.out, args.allow_mixed)
    print(f"merged {len(args.runs)} runs into {target}")
    return 0

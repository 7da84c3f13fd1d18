"""`membench import-pytest-benchmark FILE.json`: a pytest-benchmark run as harness results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from harness.cli.console import print_summary
from harness.run.pytest_bench import import_pytest_benchmark
from harness.store.manifest import read_manifest
from harness.store.rows import read_rows


def register(sub: Any) -> None:
    p = sub.add_parser("import-pytest-benchmark",
                       help="turn pytest-benchmark JSON into a run directory",
                       description="Convert a pytest-benchmark JSON file (from "
                                   "--benchmark-json or --benchmark-autosave) into a run "
                                   "directory, so `membench compare` and the reports apply.")
    p.add_argument("file", type=Path, metavar="FILE.json")
    p.add_argument("--out", type=Path, default=Path("results"),
                   help="where the run directory is created (default: results/)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    run_dir = import_pytest_benchmark(args.file, args.out)
    print_summary(read_rows(run_dir), warnings=read_manifest(run_dir).get("warnings", ()))
    print(f"results: {run_dir}")
    return 0

"""`membench` command line: one module per subcommand, dispatched from here.

Every user error is a `MembenchError`: printed as one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from harness.cli import (
    ab_cmd,
    compare_cmd,
    export_cmd,
    history_cmd,
    list_cmd,
    merge_cmd,
    probe_cmd,
    run_cmd,
)
from harness.errors import MembenchError

COMMANDS = (run_cmd, list_cmd, probe_cmd, compare_cmd, ab_cmd, history_cmd, merge_cmd, export_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="membench",
        description="Where should ML kernels' buffers live when they run as WebAssembly? "
                    "Run workloads under memory strategies on wasm runtimes and measure.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MembenchError as exc:
        print(f"membench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("membench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

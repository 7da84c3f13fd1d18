"""`membench` command line: one module per subcommand, dispatched from here.

Every user error is a `MembenchError` (or a bad command line): printed as one line on
stderr, exit status 2. Warnings (a truncated results file, ...) are one line each too.
Ctrl-C exits 130; SIGTERM and SIGHUP during a run exit 143 and 129 (`harness.run.interrupt`).
Beside the commands: `console` (terminal tables) and `export` (the module corpus).

The top floor: may import every package, `reports` included.
"""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from harness.cli import (
    ab_cmd,
    compare_cmd,
    export_cmd,
    history_cmd,
    import_cmd,
    isolation_cmd,
    list_cmd,
    merge_cmd,
    probe_cmd,
    report_cmd,
    run_cmd,
    stability_cmd,
)
from harness.core.errors import MembenchError
from harness.plugins.params import suggest
from harness.run.interrupt import Terminated, exit_status

COMMANDS = (run_cmd, list_cmd, probe_cmd, compare_cmd, ab_cmd, history_cmd, merge_cmd, export_cmd,
            report_cmd, import_cmd, stability_cmd, isolation_cmd)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump), like every other error."""

    def error(self, message: str) -> NoReturn:
        bad = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if bad:
            message += suggest(bad.group(1), re.findall(r"'([^']*)'", bad.group(2)))
        self.exit(2, f"membench: error: {message} (see {self.prog} --help)\n")


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str,
                      lineno: int, file: Any = None, line: str | None = None) -> None:
    print(f"membench: warning: {message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="membench",
        description="Where should ML kernels' buffers live when they run as WebAssembly? "
                    "Run workloads under memory strategies on wasm runtimes and measure.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in COMMANDS:
        mod.register(sub)
    return parser


def _stopped(exc: KeyboardInterrupt) -> int:
    """Say how the run was stopped; its exit status."""
    print(f"membench: {'terminated' if isinstance(exc, Terminated) else 'interrupted'}",
          file=sys.stderr)
    return exit_status(exc)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt as exc:  # also when it comes while reporting another error
        return _stopped(exc)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed)
        return exc.code if isinstance(exc.code, int) else 2
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _one_line_warning
        try:
            return int(args.func(args) or 0)
        except MembenchError as exc:
            print(f"membench: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            return _stopped(exc)


if __name__ == "__main__":
    sys.exit(main())

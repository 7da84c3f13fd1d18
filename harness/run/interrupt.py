"""Stopping a run: the first Ctrl-C stops after the current cell; a second, SIGTERM or SIGHUP
stop at once.

Workers run in their own session, so the terminal's SIGINT reaches only the harness. The
first SIGINT sets a flag the run loop checks between cells (the cell being measured
finishes and is written); the second raises KeyboardInterrupt, which kills the running
worker's process group on its way out. SIGTERM (`kill`, `timeout`, a CI job's cancel) and
SIGHUP (the terminal closed) raise `Terminated` at once: without a handler Python would
die on the spot, leaving the worker running as an orphan (pinned, disturbing whatever is
measured next) and its temporary directory behind. Either way the run ends as
`interrupted`, and every finished row stays in the results.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any

#: signals that stop a run at once (SIGHUP is absent on Windows)
STOP_NOW = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP during a run: unwinds like a second Ctrl-C; the process then exits
    with 128 + the signal's number, as the shell reports a process that signal killed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: KeyboardInterrupt) -> int:
    """The exit status of a run stopped by `exc`: 130 for Ctrl-C, 128 + N for signal N."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)


def _ignore_further_stops() -> None:
    """While a stop unwinds (killing the worker, removing its files, writing run.json), a
    repeated signal (a closed terminal sends SIGHUP twice; supervisors repeat SIGTERM) must
    not interrupt that cleanup; `GracefulStop.__exit__` restores the handlers."""
    for signum in (signal.SIGINT, *STOP_NOW):
        signal.signal(signum, signal.SIG_IGN)


class GracefulStop:
    """Context manager installing the two-stage SIGINT handler and the SIGTERM/SIGHUP one
    (main thread only; elsewhere it does nothing and signals keep their behaviour)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            _ignore_further_stops()
            raise KeyboardInterrupt
        self.requested = True
        print("\nmembench: stopping after the current cell (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)

    @staticmethod
    def _terminate(signum: int, frame: FrameType | None) -> None:
        _ignore_further_stops()
        raise Terminated(signum)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a stop was requested (call between cells)."""
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
            for signum in STOP_NOW:
                self._previous[signum] = signal.signal(signum, self._terminate)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

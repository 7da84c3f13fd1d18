"""Ctrl-C during a run: the first one stops after the current cell, the second at once.

Workers run in their own session, so the terminal's SIGINT reaches only the harness. The
first SIGINT sets a flag the run loop checks between cells (the cell being measured
finishes and is written); the second raises KeyboardInterrupt, which kills the running
worker's process group on its way out. Either way the run ends as `interrupted`.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any


class GracefulStop:
    """Context manager installing the two-stage SIGINT handler (main thread only;
    elsewhere it does nothing and Ctrl-C keeps Python's default behaviour)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nmembench: stopping after the current cell (Ctrl-C again to stop now)",
              file=sys.stderr, flush=True)

    def check(self) -> None:
        """Raise KeyboardInterrupt when a stop was requested (call between cells)."""
        if self.requested:
            raise KeyboardInterrupt

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

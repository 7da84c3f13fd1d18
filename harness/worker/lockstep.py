"""Lockstep sampling: the two sides of an A/B pair take their samples alternately.

Host interference on a shared machine comes in bursts of tens to hundreds of milliseconds
that slow everything ~1.5x (`harness.probes.interference`). One round of one cell (a few tens of
milliseconds of samples) falls inside or outside such a burst as a whole, so the round
medians of identical code differ by that much and a 10% regression hides among them.
When the A and B workers of a round are alive together and take sample i of A and sample
i of B back to back (ABBA order), a burst slows both samples of a pair alike: the pair's
ratio keeps the difference between the sides and loses most of the burst (Chromium's
Pinpoint and tachometer interleave A/B samples for the same reason).

Protocol: two pipes per worker, passed as inherited file descriptors named in the request
(`"lockstep": {"go_fd": .., "ready_fd": ..}`). At a gate the worker writes one byte to
`ready` and blocks reading one byte from `go`. Gates: before set-up (the two set-ups and
cold inferences never overlap), before every sample, and after the last sample (neither
side's teardown overlaps the other's samples). EOF on `go` releases a worker for good; a
worker that ends early (trap, crash) closes `ready`, and the other side goes on alone,
its round marked unpaired.
"""

from __future__ import annotations

import contextlib
import os
import select
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the request key that carries a worker's pipe ends
REQUEST_KEY = "lockstep"


def gated(request: Mapping[str, Any], fds: tuple[int, int]) -> dict[str, Any]:
    """A worker request whose worker passes the gates of the pipe ends `fds` (go, ready)."""
    return {**request, REQUEST_KEY: {"go_fd": fds[0], "ready_fd": fds[1]}}


@dataclass
class Gate:
    """Worker side: wait at a gate until the harness says go (no-op once released)."""

    go_fd: int
    ready_fd: int
    open: bool = True

    @classmethod
    def from_request(cls, req: Mapping[str, Any]) -> Gate | None:
        fds = req.get(REQUEST_KEY)
        return cls(int(fds["go_fd"]), int(fds["ready_fd"])) if fds else None

    def wait(self) -> None:
        if not self.open:
            return
        try:
            os.write(self.ready_fd, b".")
            got = os.read(self.go_fd, 1)
        except OSError:
            got = b""
        if not got:  # released (or the harness is gone): no more gates
            self.open = False
            with contextlib.suppress(OSError):
                os.close(self.ready_fd)


@dataclass
class Channel:
    """Harness side of one worker's pipes (each end closed once: fd numbers are reused)."""

    name: str
    go_r: int
    go_w: int
    ready_r: int
    ready_w: int
    alive: bool = True
    why: str = ""

    @classmethod
    def open(cls, name: str) -> Channel:
        go_r, go_w = os.pipe()
        ready_r, ready_w = os.pipe()
        return cls(name, go_r, go_w, ready_r, ready_w)

    def child_fds(self) -> tuple[int, int]:
        return (self.go_r, self.ready_w)

    def _close(self, attr: str) -> None:
        fd = getattr(self, attr)
        if fd >= 0:
            setattr(self, attr, -1)
            with contextlib.suppress(OSError):
                os.close(fd)

    def started(self) -> None:
        """After the worker started: drop the parent's copies of the child's ends, so the
        worker's exit shows as EOF on `ready`."""
        self._close("go_r")
        self._close("ready_w")

    def await_ready(self, timeout_s: float) -> bool:
        """Block until the worker reaches a gate; False (and dead) if it ended, or did not
        get there within `timeout_s`."""
        if not self.alive:
            return False
        readable, _, _ = select.select([self.ready_r], [], [], timeout_s)
        if not readable:
            self.alive, self.why = False, "timed out at a gate"
            return False
        if not os.read(self.ready_r, 1):
            self.alive, self.why = False, "ended before its gates were done"
            return False
        return True

    def go(self) -> None:
        if self.alive:
            try:
                os.write(self.go_w, b".")
            except OSError:
                self.alive, self.why = False, "gone"

    def release(self) -> None:
        """Let the worker run on to its end without further gates."""
        self._close("go_w")

    def close(self) -> None:
        for attr in ("go_r", "go_w", "ready_r", "ready_w"):
            self._close(attr)


def conduct(a: Channel, b: Channel, samples: int, step_timeout_s: float) -> bool:
    """Drive two started workers through their gates: set-ups one after the other, then
    samples alternately (A B, B A, A B, ...), so every sample of one side has a partner
    of the other side taken right before or after it. A worker that takes longer than
    `step_timeout_s` to reach its next gate is dropped (its partner goes on alone). Both
    workers are left waiting at their last gate (release them one at a time). True if
    both stayed in step to the end."""
    a.await_ready(step_timeout_s)
    b.await_ready(step_timeout_s)
    for ch in (a, b):  # set-up, cold inference, warm-up and calibration, in turn
        ch.go()
        ch.await_ready(step_timeout_s)
    for i in range(samples):
        for ch in (a, b) if i % 2 == 0 else (b, a):
            ch.go()
            ch.await_ready(step_timeout_s)
    return a.alive and b.alive

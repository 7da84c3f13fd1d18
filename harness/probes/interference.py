"""Host interference: how much of the time this CPU runs slower than it can, for reasons
no load average, steal counter or process list in the guest shows.

On a small VM of a shared server, other tenants (the host's SMT sibling, its memory
bandwidth, its power budget) slow a run of consecutive samples by 1.5x or more for tens to
hundreds of milliseconds; on this project's 2-vCPU machine the share of such time went
from 2% to 33% within an hour while the guest stayed idle. Timings cannot be better than
this, so a run measures it at its start and its end and says so (`run.json`
`host_interference`, and a warning), next to the CVs it explains.

The probe times fixed slices of SIMD floating-point work (NumPy on L1-resident arrays,
single-threaded) with the thread's CPU clock, so being descheduled does not count: only
slices that got less work done per CPU second do. The fastest slices set the unhindered
speed (10th percentile); a slice more than `SLOW` times that is slowed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: a slice taking this many times the unhindered time counts as slowed
SLOW = 1.15
#: a warning when more than this share of the probe's slices were slowed
WARN_FRACTION = 0.05


@dataclass(frozen=True)
class HostInterference:
    slices: int
    slice_s: float            # unhindered slice time (10th percentile, CPU clock)
    slowed_fraction: float    # share of slices slower than SLOW x unhindered
    slowed_factor: float      # median slowdown of the slowed slices (1.0 if none)
    longest_burst_s: float    # longest run of consecutive slowed slices, in seconds
    cv: float                 # CV of all slice times: what a sample cannot beat here

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if not self.slowed_fraction:
            return f"host interference: none seen in {self.slices} slices (CV {self.cv:.1%})"
        return (f"host interference: {self.slowed_fraction:.0%} of a {self.slices}-slice probe "
                f"ran {self.slowed_factor:.2f}x slower than the unhindered speed (bursts up "
                f"to {self.longest_burst_s * 1e3:.0f} ms; slice CV {self.cv:.1%}), in CPU time, "
                "so not preemption: other tenants of the host; expect that much spread "
                "between samples and rounds")


def summarize_slices(times: Sequence[float]) -> HostInterference:
    """The figures of a probe from its slice times (seconds, in order)."""
    t = np.asarray(times, dtype=np.float64)
    if t.size < 2:
        raise ValueError("need at least two slices")
    fast = float(np.quantile(t, 0.10))
    slowed = t > SLOW * fast
    longest = run = 0
    for s in slowed:
        run = run + 1 if s else 0
        longest = max(longest, run)
    return HostInterference(
        slices=int(t.size), slice_s=fast, slowed_fraction=float(slowed.mean()),
        slowed_factor=float(np.median(t[slowed]) / fast) if slowed.any() else 1.0,
        longest_burst_s=float(longest * np.median(t)), cv=float(t.std(ddof=1) / t.mean()))


def _slices(duration_s: float, slice_s: float) -> list[float]:
    x = np.random.default_rng(0).random(2048, dtype=np.float32)
    y = np.ones_like(x)
    z = np.zeros_like(x)
    clock = time.thread_time_ns

    def unit() -> None:
        np.multiply(x, y, out=z)
        np.add(z, x, out=z)

    # calibrate on the fastest of a few short batches (a burst during calibration must not
    # shrink the slices): units per slice so that an unhindered slice lasts `slice_s`
    best = float("inf")
    for _ in range(10):
        t0 = clock()
        for _ in range(50):
            unit()
        best = min(best, (clock() - t0) / 50 / 1e9)
    per_slice = max(1, int(slice_s / max(best, 1e-9)))
    times = []
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        t0 = clock()
        for _ in range(per_slice):
            unit()
        times.append((clock() - t0) / 1e9)
    return times


def probe_interference(duration_s: float = 1.0, slice_s: float = 0.005,
                       cpus: Sequence[int] = ()) -> HostInterference:
    """Run the probe for `duration_s` on one of `cpus` (the CPUs workers are pinned to;
    any CPU when empty), in a thread of its own so this process keeps its affinity."""
    out: list[list[float]] = []

    def body() -> None:
        if cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cpus))  # 0: this thread, on Linux
        out.append(_slices(duration_s, slice_s))

    th = threading.Thread(target=body, name="membench-interference-probe")
    th.start()
    th.join()
    return summarize_slices(out[0])

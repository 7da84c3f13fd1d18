"""Timing loops shared by the Python workers (the Node worker mirrors them).

Sampling follows pyperf: a cold first inference timed on its own, warm-up until steady,
calibration so one sample lasts at least `sample_s` (several inferences per sample when
one is short), then `samples` timed samples. Samples are per-inference seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class MeasureSettings:
    warmup_s: float = 0.05      # at least this long warming up ...
    warmup_runs: int = 2        # ... and at least this many inferences
    sample_s: float = 0.01      # target duration of one sample
    samples: int = 10           # timed samples per cell
    max_inner: int = 1_000_000  # cap on inferences per sample
    seed: int = 0               # data seed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeasureSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Timing:
    first_s: float = 0.0
    warmup_runs: int = 0
    inner: int = 1
    samples_s: list[float] = field(default_factory=list)

    def inferences(self) -> int:
        """Inferences run after the cold one (warm-up plus every sample's inner loop)."""
        return self.warmup_runs + self.inner * len(self.samples_s)


def time_cold(run: Callable[[], None], clock: Callable[[], int] = time.perf_counter_ns) -> float:
    """Seconds taken by one inference (the first one: cold caches, baseline JIT tier)."""
    t0 = clock()
    run()
    return (clock() - t0) / 1e9


def time_steady(run: Callable[[], None], s: MeasureSettings, first_s: float,
                clock: Callable[[], int] = time.perf_counter_ns) -> Timing:
    """Warm up, calibrate and take samples; return per-inference times."""
    out = Timing(first_s=first_s)
    # warm-up (JIT tier-up, caches): keep the fastest recent inference as the estimate
    best = first_s
    start = clock()
    runs = 0
    while runs < s.warmup_runs or (clock() - start) / 1e9 < s.warmup_s:
        t0 = clock()
        run()
        best = min(best, (clock() - t0) / 1e9)
        runs += 1
    out.warmup_runs = runs
    inner = max(1, min(s.max_inner, math.ceil(s.sample_s / max(best, 1e-9))))
    out.inner = inner
    for _ in range(s.samples):
        t0 = clock()
        for _ in range(inner):
            run()
        out.samples_s.append((clock() - t0) / 1e9 / inner)
    return out

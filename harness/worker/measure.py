"""Timing loops shared by the Python workers (the Node worker mirrors them).

One worker process measures one *round* of one cell:

1. **cold**: the first inference, timed on its own (cold caches, baseline JIT tier);
2. **warm-up until steady**: inferences in batches of at least `batch_s` (so the timer's
   resolution is negligible), until all of: `warmup_runs` inferences and `warmup_s`
   seconds have passed, and the best per-inference time of the last `steady_window`
   batches is no better than `(1 - steady_tol)` × the best before them (no batch improved
   on the earlier ones: caches warm, JIT tiers up done). `warmup_max_s` caps it; a round
   that hits the cap says so (`steady: false`);
3. **calibration**: `inner` = ceil(`sample_s` / per-inference estimate), the estimate
   being the median of the last `steady_window` warm-up batches, capped at `max_inner`;
4. **samples**: `samples` timed samples of `inner` inferences each; a sample is the mean
   per-inference time of its inner loop (seconds).

The runner repeats this for `rounds` rounds, a fresh worker per cell per round, cells in a
shuffled order per round (see `harness.run.rounds`).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

Clock = Callable[[], int]
#: per-inference measures: `time` (the samples), `fuel` (wasm operators, counted by the
#: engine in a pass of its own after the samples, so the count never slows a timed one),
#: `insts` (native instructions, counted by callgrind in a worker of its own:
#: `harness.run.insts`)
MEASURES = ("time", "fuel", "insts", "cache")
#: runs `n` inferences at once: a variant whose inference loop is not Python's (a linked
#: program's own driver, `harness.standalone.paired`) gives one, so that a sample costs
#: one call into it rather than `n`
Batch = Callable[[int], None]

#: `clock` setting -> nanosecond clock. `cpu` (CLOCK_THREAD_CPUTIME_ID) leaves out the
#: time the worker was not running (preempted by other tenants of a shared machine); it
#: still includes their effect on caches and memory bandwidth.
CLOCKS: dict[str, Clock] = {"wall": time.perf_counter_ns, "cpu": time.thread_time_ns}


def clock_of(s: MeasureSettings) -> Clock:
    try:
        return CLOCKS[s.clock]
    except KeyError:
        raise ValueError(f"unknown clock {s.clock!r}; known: {', '.join(CLOCKS)}") from None


@dataclass(frozen=True)
class MeasureSettings:
    warmup_s: float = 0.05      # warm up at least this long ...
    warmup_runs: int = 2        # ... and at least this many inferences ...
    warmup_max_s: float = 2.0   # ... and at most this long (then: steady = False)
    steady_window: int = 5      # batches that must not improve on the best before them
    steady_tol: float = 0.02    # "improve" = faster by more than this fraction
    batch_s: float = 0.001      # a warm-up batch lasts at least this long
    sample_s: float = 0.01      # target duration of one sample
    samples: int = 10           # timed samples per round
    rounds: int = 3             # rounds (fresh worker per cell per round, shuffled order)
    max_inner: int = 1_000_000  # cap on inferences per sample
    seed: int = 0               # data seed
    order_seed: int | None = None  # seed of the per-round cell order (None: drawn per run)
    breakdown: bool = False     # extra instrumented pass: time per step kind
    clock: str = "wall"         # wall: perf_counter; cpu: this thread's CPU time
    #: what is measured per inference: time always; `fuel` adds a counting pass (MEASURES)
    measure: tuple[str, ...] = ("time",)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MeasureSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "measure" in known:
            known["measure"] = tuple(known["measure"])
        return cls(**known)


@dataclass
class Timing:
    first_s: float = 0.0
    warmup_runs: int = 0
    warmup_s: float = 0.0
    steady: bool = True
    inner: int = 1
    samples_s: list[float] = field(default_factory=list)

    #: untimed inferences right after a lockstep gate (see `time_steady`)
    rewarm_runs: int = 0
    #: in a comparison group, the pass each sample was taken in (`time_interleaved`)
    passes: list[int] = field(default_factory=list)

    def inferences(self) -> int:
        """Inferences run after the cold one (warm-up, re-warm-ups, every sample's inner
        loop)."""
        return self.warmup_runs + self.rewarm_runs + self.inner * len(self.samples_s)

    clock: str = "wall"

    def to_dict(self) -> dict[str, Any]:
        out = {"clock": self.clock, "inner": self.inner, "warmup_runs": self.warmup_runs,
               "warmup_s": self.warmup_s, "steady": self.steady, "samples_s": self.samples_s}
        if self.rewarm_runs:
            out["rewarm_runs"] = self.rewarm_runs
        if self.passes:
            out["passes"] = self.passes
        return out


def time_cold(run: Callable[[], None], clock: Clock = time.perf_counter_ns) -> float:
    """Seconds taken by one inference (the first one: cold caches, baseline JIT tier)."""
    t0 = clock()
    run()
    return (clock() - t0) / 1e9


@dataclass
class WarmUp:
    runs: int = 0
    elapsed_s: float = 0.0
    steady: bool = False
    estimate_s: float = 0.0     # per-inference time used for calibration
    batches_s: list[float] = field(default_factory=list)  # per-inference time of each batch


def is_steady(batches_s: list[float], window: int, tol: float) -> bool:
    """True when none of the last `window` batches beat the best earlier batch by > tol."""
    if len(batches_s) <= window:
        return False
    before = min(batches_s[:-window])
    return min(batches_s[-window:]) >= before * (1.0 - tol)


def warm_up(run: Callable[[], None], s: MeasureSettings, first_s: float,
            clock: Clock = time.perf_counter_ns, repeat: Batch | None = None) -> WarmUp:
    """Run batches until steady (see the module docstring), or until `warmup_max_s`; a
    batch through `repeat` where given."""
    out = WarmUp()
    per = max(first_s, 1e-9)
    start = clock()
    while True:
        batch = max(1, min(s.max_inner, math.ceil(s.batch_s / per)))
        t0 = clock()
        if repeat is not None:
            repeat(batch)
        else:
            for _ in range(batch):
                run()
        t1 = clock()
        per = max((t1 - t0) / 1e9 / batch, 1e-9)
        out.batches_s.append(per)
        out.runs += batch
        out.elapsed_s = (t1 - start) / 1e9
        enough = out.runs >= s.warmup_runs and out.elapsed_s >= s.warmup_s
        if enough and is_steady(out.batches_s, s.steady_window, s.steady_tol):
            out.steady = True
            break
        if out.elapsed_s >= s.warmup_max_s:
            break
    out.estimate_s = statistics.median(out.batches_s[-s.steady_window:])
    return out


def busy_work(ns: float, clock: Clock) -> int:
    """Real work (integer arithmetic, never a sleep) until `clock` has advanced `ns`."""
    end = clock() + int(ns)
    acc = 0
    while clock() < end:
        acc = (acc * 1103515245 + 12345) & 0x7FFFFFFF
    return acc


def time_steady(run: Callable[[], None], s: MeasureSettings, first_s: float,
                clock: Clock = time.perf_counter_ns,
                gate: Callable[[], None] | None = None, slowdown: float = 0.0) -> Timing:
    """Warm up until steady, calibrate and take samples; return per-inference times.

    `gate` (lockstep A/B, `harness.worker.lockstep`) is called before every sample and once after
    the last; it blocks while the other side of the pair takes its sample. After each gate
    one untimed inference puts back what the other side's sample evicted (caches, TLB,
    branch predictors), as a steady-state sample assumes.

    `slowdown` (a fraction; the runtimes' `slowdown=N` parameter) adds, inside every
    sample after its inferences, busy work lasting that share of their time: a known,
    proportional regression for testing detection. Per sample and not per inference:
    busy work between inferences changes how fast the next inference runs (measured on
    per-module GEMM: a 10% spin after every inference made the cell 3.5% slower, a 5%
    one 3% faster), so the cell would not be slowed by the stated amount."""
    wu = warm_up(run, s, first_s, clock)
    out = Timing(first_s=first_s, warmup_runs=wu.runs, warmup_s=wu.elapsed_s, steady=wu.steady,
                 clock=s.clock)
    inner = out.inner = inner_for(s, wu.estimate_s)
    for _ in range(s.samples):
        if gate is not None:
            gate()
            run()
            out.rewarm_runs += 1
        t0 = clock()
        for _ in range(inner):
            run()
        if slowdown:
            busy_work((clock() - t0) * slowdown, clock)
        out.samples_s.append((clock() - t0) / 1e9 / inner)
    if gate is not None:
        gate()
    return out


def inner_for(s: MeasureSettings, estimate_s: float) -> int:
    """Inferences per sample: enough for `sample_s` at the per-inference `estimate_s`."""
    return max(1, min(s.max_inner, math.ceil(s.sample_s / max(estimate_s, 1e-9))))


def rotation(n: int, k: int) -> list[int]:
    """The order of `n` variants in sample `k`: rotated by one per sample, so over `n`
    samples each variant takes every position once (no variant always runs right after
    the same neighbour, or always first after a pause)."""
    return [(k + i) % n for i in range(n)]


#: a variant whose samples are slow (inferences longer than `sample_s`) takes fewer of
#: them, but never fewer than this
MIN_PASSES = 10
#: a variant's samples may cost up to this many `sample_s` each: a fast variant spends 2
#: (a re-warming inference and the sample); a slow one gets twice that before its count
#: drops. With 2, the default suite's variants of 0.5-5 ms inferences (resnet8, a
#: per-module transformer block) took 11-45 samples and their ratios had CI half-widths
#: of 3-3.5%, the upper quartile of the run's resolution figure
SAMPLE_COST = 4


def samples_for(s: MeasureSettings, per_inference_s: Sequence[float],
                inner: Sequence[int]) -> list[int]:
    """How many samples each variant of a group takes (in how many passes it takes part):
    `samples`, unless that would cost it more than `samples` × SAMPLE_COST × `sample_s`;
    then as many as fit that time, at least MIN_PASSES.

    Per variant, not per group: one slow variant (a host-call plan whose inference takes
    80 ms) no longer costs the fast ones their passes. With one pass count for the whole
    group, the default suite's groups that held one slow variant gave every variant
    MIN_PASSES samples, and those ratios had a median CI half-width of 4.3-4.9% (1.7-2.1%
    for groups of 40 passes or more)."""
    budget = s.samples * SAMPLE_COST * s.sample_s
    floor = min(s.samples, MIN_PASSES)
    return [max(floor, min(s.samples, int(budget / max(e * (k + 1), 1e-12))))
            for e, k in zip(per_inference_s, inner, strict=True)]


def takes_part(k: int, count: int, passes: int) -> bool:
    """Whether a variant of `count` samples samples in pass `k` of `passes`: its passes are
    spread evenly (every pass when `count == passes`), and two variants of equal count
    share theirs, so they pair with each other as with the baseline."""
    return (k + 1) * count // passes > k * count // passes


def time_interleaved(runs: Sequence[Callable[[], None]], s: MeasureSettings,
                     first_s: Sequence[float], clock: Clock = time.perf_counter_ns,
                     switch: Callable[[int], None] | None = None,
                     slowdowns: Sequence[float] | None = None,
                     repeats: Sequence[Batch | None] | None = None
                     ) -> list[Timing | BaseException]:
    """A comparison group's samples: every variant warmed up to steady on its own, then
    passes in which each living variant takes one sample, in the rotating order of
    `rotation`. A slow variant takes part in fewer passes (`samples_for`, spread by
    `takes_part`); each sample records its pass (`Timing.passes`). A variant's sample and
    the baseline's of the same pass were taken within a few milliseconds: a drift of the
    host hits both alike, and their ratios pair sample by sample.

    Before each sample one untimed inference puts back what the other variants' samples
    evicted (caches, TLB, branch predictors), as in lockstep A/B. `switch(i)` is called
    before variant i's turn (the worker records there who is running, so a crash can be
    blamed on one variant). A variant whose inference raises gets the exception in place
    of its timing and leaves the rotation; the others go on. `repeats[i]`, where given,
    runs variant i's warm-up batches and samples in one call (its own loop); the clock is
    still this one, around that call, so both kinds of variant are timed alike."""
    n = len(runs)
    out: list[Timing | BaseException] = [Timing(first_s=f, clock=s.clock) for f in first_s]
    slow = list(slowdowns or [0.0] * n)
    loops = list(repeats or [None] * n)
    inner = [1] * n
    estimates = [0.0] * n
    for i, run in enumerate(runs):
        if switch is not None:
            switch(i)
        try:
            wu = warm_up(run, s, first_s[i], clock, loops[i])
        except Exception as exc:
            out[i] = exc
            continue
        t = out[i]
        assert isinstance(t, Timing)
        t.warmup_runs, t.warmup_s, t.steady = wu.runs, wu.elapsed_s, wu.steady
        t.inner = inner[i] = inner_for(s, wu.estimate_s)
        estimates[i] = wu.estimate_s
    counts = samples_for(s, estimates, inner)
    living = [counts[i] for i in range(n) if isinstance(out[i], Timing)]
    passes = max(living, default=0)
    for k in range(passes):
        for i in rotation(n, k):
            t = out[i]
            if not isinstance(t, Timing) or not takes_part(k, counts[i], passes):
                continue
            if switch is not None:
                switch(i)
            run, loop = runs[i], loops[i]
            try:
                run()
                t.rewarm_runs += 1
                t0 = clock()
                if loop is not None:
                    loop(inner[i])
                else:
                    for _ in range(inner[i]):
                        run()
                if slow[i]:
                    busy_work((clock() - t0) * slow[i], clock)
                t.samples_s.append((clock() - t0) / 1e9 / inner[i])
                t.passes.append(k)
            except Exception as exc:
                out[i] = exc
    return out

"""Inside a worker: a comparison group, every strategy variant of one workload on one
runtime, loaded side by side in this process and sampled in lockstep (rotating order;
`measure.time_interleaved`).

One process per group and round is the isolation unit. A variant that traps, or that its
runtime cannot express, ends alone with its status; the others are measured. A crash that
takes the process down is blamed on the variant that was running: before each variant's
turn its index is written to the `blame_path` file, which the parent reads when the worker
dies and then measures the others again without it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from harness.core.protocol import load_tensors
from harness.plugins.plan import Plan
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported
from harness.worker.measure import MeasureSettings, Timing, clock_of, time_interleaved
from harness.worker.variant import (
    LoadedVariant,
    finish_variant,
    load_variant,
    one_line,
    slowdown_of,
)

#: the blame file holds one fixed-width line: the index of the running variant, or -1
BLAME_WIDTH = 8


def blame_line(index: int) -> bytes:
    return f"{index:>{BLAME_WIDTH - 1}}\n".encode("ascii")


class Blame:
    """Who is running now, kept in a file the parent can read after a crash (one pwrite
    per turn, outside every timed region)."""

    def __init__(self, path: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600) if path else None

    def __call__(self, index: int) -> None:
        if self.fd is not None:
            os.pwrite(self.fd, blame_line(index), 0)

    def close(self) -> None:
        if self.fd is not None:
            self(-1)
            os.close(self.fd)


def read_blame(path: Path) -> int | None:
    """The variant a dead group worker was running, if it said."""
    try:
        index = int(path.read_text(encoding="ascii").strip() or "-1")
    except (OSError, ValueError):
        return None
    return index if index >= 0 else None


def failure(exc: BaseException, traps: tuple[type[BaseException], ...]) -> dict[str, Any]:
    """A variant's result when loading or running it raised `exc` (`traps`: the runtime's
    trap types)."""
    if isinstance(exc, traps):
        return {"status": "trapped", "message": one_line(exc)}
    if isinstance(exc, RuntimeUnsupported):
        return {"status": "unsupported", "message": str(exc)}
    return {"status": "crashed", "message": one_line(exc)}


def group_summary(n: int, settings: MeasureSettings, t0: float, t1: float,
                  t2: float) -> dict[str, Any]:
    """Where a group worker's time went: loading (compile, instantiate, set-up, first
    inference), warm-up and samples, checks and outputs; the parent adds the process
    start."""
    return {"variants": n, "order": "rotating", "samples": settings.samples,
            "load_s": t1 - t0, "measure_s": t2 - t1, "finish_s": time.perf_counter() - t2}


def run_group(req: dict[str, Any], rt: Runtime, be: Backend, out_dir: Path) -> dict[str, Any]:
    data = load_tensors(req["inputs"])
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    blame = Blame(req.get("blame_path"))
    n = len(req["variants"])
    results: list[dict[str, Any] | None] = [None] * n
    loaded: dict[int, LoadedVariant] = {}

    def failed(exc: BaseException) -> dict[str, Any]:
        return failure(exc, be.trap_types())

    t0 = time.perf_counter()
    try:
        for i, variant in enumerate(req["variants"]):
            blame(i)
            try:
                plan = Plan.from_json(Path(variant["plan_path"]).read_text(encoding="utf-8"))
                loaded[i] = load_variant(be, plan, data, settings)
            except Exception as exc:
                results[i] = failed(exc)
        alive = sorted(loaded)
        t1 = time.perf_counter()
        timings = time_interleaved(
            [loaded[i].lp.run_once for i in alive], settings, [loaded[i].first_s for i in alive],
            clock_of(settings), switch=lambda k: blame(alive[k]),
            slowdowns=[slowdown_of(rt)] * len(alive))
        t2 = time.perf_counter()
        for i, timing in zip(alive, timings, strict=True):
            blame(i)
            if not isinstance(timing, Timing):
                results[i] = failed(timing)
                continue
            try:
                results[i] = finish_variant(loaded[i], timing, be, data, settings, out_dir,
                                            prefix=f"v{i}_", shared_process=len(alive) > 1)
            except Exception as exc:
                results[i] = failed(exc)
    finally:
        blame.close()
    return {"status": "ok", "message": "", "variants": results,
            "group": group_summary(n, settings, t0, t1, t2)}

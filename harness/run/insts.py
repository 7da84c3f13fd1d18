"""`--measure insts`: native instructions per inference, counted by callgrind
(`harness.toolchain.valgrind`) in a worker of its own, once per cell (round 0), after the
timed worker: the plans of a group are loaded in one counted worker, and each plan's
count is the difference of two segments of different lengths, so start-up, compiling and
the loop's fixed cost cancel. Workers that are not Python-embedded (JavaScript engines,
standalone programs) are not counted here, and say so.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import ToolUnavailable
from harness.core.protocol import RESPONSE, save_tensors
from harness.plugins.plan import Plan
from harness.runtimes.base import Runtime
from harness.toolchain import valgrind

#: inferences in the two counted segments
SEGMENTS = (1, 3)
#: inferences a JavaScript worker runs before counting, so V8 has tiered its code up
JS_WARMUP = 10
#: a JavaScript worker's segments: pairs of SEGMENTS, three times; the count is the median
#: of the three pairs' differences, so a tier-up or a collection that lands in one
#: segment does not make the count
JS_SEGMENTS = SEGMENTS * 3


def count_insts(runtime: Runtime, plans: Mapping[str, Plan], data: dict[str, np.ndarray],
                workdir: Path, timeout_s: float = 900.0) -> dict[str, dict[str, Any]]:
    """Plan name -> {"insts": instructions per inference} or {"insts": None,
    "insts_reason": why}."""
    def none(why: str) -> dict[str, dict[str, Any]]:
        return {name: {"insts": None, "insts_reason": why} for name in plans}

    argv = runtime.insts_argv()
    kind = runtime.INSTS_MARKS or ("client-request" if "harness.worker" in argv else None)
    if kind is None:
        return none(f"{runtime.spec}'s worker cannot mark callgrind segments (no client "
                    "requests, no fsync marks)")
    try:
        prefix = valgrind.command(workdir / "callgrind.out", kind)
        marks = valgrind.marks_library() if kind == "client-request" else None
    except ToolUnavailable as exc:
        return none(str(exc))
    paths = {}
    for name, plan in plans.items():
        paths[name] = str(workdir / f"{name}.plan.json")
        Path(paths[name]).write_text(plan.to_json(), encoding="utf-8")
    request = workdir / "insts-request.json"
    request.write_text(json.dumps({"kind": "insts", "runtime": runtime.spec,
                                   "plans": paths, "inputs": save_tensors(workdir, data),
                                   "marks": str(marks),
                                   "inferences": list(JS_SEGMENTS if kind == "fsync"
                                                      else SEGMENTS),
                                   "warmup": JS_WARMUP}))
    try:
        done = subprocess.run([*prefix, *argv, str(request)], capture_output=True, text=True,
                              timeout=timeout_s, env={**os.environ, "PYTHONHASHSEED": "0"})
    except subprocess.TimeoutExpired:
        return none(f"the counted worker took over {timeout_s:.0f} s under valgrind")
    resp_path = workdir / RESPONSE
    resp = json.loads(resp_path.read_text()) if resp_path.exists() else {}
    if done.returncode != 0 or resp.get("status") != "ok":
        why = resp.get("message") or (done.stderr.strip().splitlines() or ["no message"])[-1]
        return none(f"the counted worker failed: {why}"[:300])
    a, b = SEGMENTS
    if kind == "fsync":
        return _from_ordered(plans, resp.get("counted", {}),
                             valgrind.read_ordered_dumps(workdir, "callgrind.out"))
    dumps = valgrind.read_dumps(workdir, "callgrind.out")
    out: dict[str, dict[str, Any]] = {}
    for name in plans:
        failed = resp.get("counted", {}).get(name)
        ia, ib = dumps.get(f"{name}:{a}"), dumps.get(f"{name}:{b}")
        if failed or ia is None or ib is None:
            out[name] = {"insts": None, "insts_reason": failed or "callgrind wrote no dump"}
        else:
            out[name] = {"insts": round((ib - ia) / (b - a))}
    return out


def _from_ordered(plans: Mapping[str, Plan], counted: Mapping[str, str],
                  dumps: list[int]) -> dict[str, dict[str, Any]]:
    """Counts from fsync-marked dumps: each plan made 1 + len(JS_SEGMENTS) marks in plan
    order (its warm-up, then each segment), the dump before a mark holding what ran since
    the one before; the count is the median over the pairs of segments."""
    a, b = SEGMENTS
    per = 1 + len(JS_SEGMENTS)
    # the worker's response is written with one more fsync, after every mark; any other
    # number means an fsync the marks did not make, and the segments would shift
    if len(dumps) not in (per * len(plans), per * len(plans) + 1):
        why = (f"callgrind wrote {len(dumps)} dumps; {per * len(plans)} marks (and the "
               "response's) were expected")
        return {name: {"insts": None, "insts_reason": why} for name in plans}
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(plans):
        seg = dumps[per * i + 1: per * (i + 1)]
        pairs = [(seg[k + 1] - seg[k]) / (b - a) for k in range(0, len(seg), 2)]
        failed = counted.get(name)
        out[name] = ({"insts": None, "insts_reason": failed} if failed
                     else {"insts": round(statistics.median(pairs))})
    return out

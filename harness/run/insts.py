"""`--measure insts`: native instructions per inference, counted by callgrind
(`harness.toolchain.valgrind`) after a run's timed rounds (`RoundRunner.count`), in
counted workers that each load several plans (`counted_together`: a Python worker every
plan of its runtime, so its start-up under valgrind, 10-20 s, is paid once per runtime; a
Node worker one comparison group's). Each plan's count is the median over pairs of
segments of different lengths of their difference, so start-up, compiling and the loop's
fixed cost cancel. The counts are written as `counts` rows, which `read_rows`
folds into the cells' final rows. Workers that cannot mark segments (standalone
programs, JavaScript hosts other than Node) are not counted, and say so.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import ToolUnavailable
from harness.core.protocol import RESPONSE, save_tensors
from harness.plugins.plan import Plan
from harness.run.request import Cell
from harness.runtimes.base import Runtime
from harness.store.rows import ResultRow
from harness.toolchain import valgrind

#: inferences in a pair of counted segments
SEGMENTS = (1, 3)
#: inferences a JavaScript worker runs before counting, so V8 has tiered its code up
JS_WARMUP = 10
#: a worker's segments: pairs of SEGMENTS, three times; the count is the median of the
#: three pairs' differences, so an event that lands in one segment (a tier-up, a
#: collection, malloc taking a new chunk) does not make the count
COUNTED_SEGMENTS = SEGMENTS * 3
#: the counted worker's time limit: a start-up, then each plan's compile and inferences
#: under valgrind (20-100x slower than native)
TIMEOUT_BASE_S, TIMEOUT_PER_PLAN_S = 300.0, 120.0


#: callgrind's simulated misses, summed into the two figures `--measure cache` reports
MISSES = {"l1_misses": ("I1mr", "D1mr", "D1mw"), "ll_misses": ("ILmr", "DLmr", "DLmw")}


def wants_insts(row: ResultRow) -> bool:
    """A finished row whose cell asked for `--measure insts` (or `cache`) and ran."""
    return row.status == "ok" and bool({"insts", "cache"} & set(row.settings.get("measure", ())))


def wants_cache(row: ResultRow) -> bool:
    """... and for the simulated cache misses too (`--measure cache`)."""
    return "cache" in row.settings.get("measure", ())


def count_runtime(batch: Sequence[tuple[Cell, ResultRow]], seed: int) -> list[ResultRow]:
    """The `counts` rows of cells counted together (one runtime; `counted_together`),
    from one counted worker, which counts them in the order of their workload and strategy
    specs, whatever order the rounds ran them in: a JavaScript host's counts depend on
    the plans its process ran before (V8's inline caches in the shared host code), and
    with the rounds' order a count of host-call's element mode moved by 0.22% from run to
    run."""
    # the folder's name is always as long: the paths a worker is given end up in its
    # strings, and their length moved a count by some tens of instructions
    with tempfile.TemporaryDirectory(prefix="membench-insts-") as tmp:
        d = Path(tmp)
        plans: dict[str, Plan] = {}
        data: dict[str, dict[str, np.ndarray]] = {}
        generated: dict[str, dict[str, np.ndarray]] = {}
        failed: dict[str, str] = {}
        order = sorted(range(len(batch)), key=lambda i: (batch[i][0].workload.spec,
                                                         batch[i][0].strategy.spec))
        for i in order:  # the plans in this order; the rows in the batch's
            cell, name = batch[i][0], f"c{i}"
            w = cell.workload
            try:
                plan = cell.strategy.plan(w)
            except Exception as exc:  # planned once already: only a changed tool fails here
                failed[name] = f"could not plan it again: {exc}"
                continue
            if plan.agents() > 1:
                failed[name] = AGENTS_UNCOUNTED
                continue
            plans[name] = plan
            if w.spec not in generated:
                generated[w.spec] = w.generate(seed)
            data[name] = generated[w.spec]
        got = count_insts(batch[0][0].runtime, plans, data, d,
                          TIMEOUT_BASE_S + TIMEOUT_PER_PLAN_S * len(plans),
                          cache=any(wants_cache(row) for _, row in batch)) if plans else {}
    rows = []
    for i, (_, row) in enumerate(batch):
        metrics = got.get(f"c{i}") or {"insts": None, "insts_reason": failed.get(f"c{i}", "")}
        rows.append(ResultRow(run_id=row.run_id, workload=row.workload, strategy=row.strategy,
                              runtime=row.runtime, side=row.side, status="ok", kind="counts",
                              settings=row.settings, metrics=metrics))
    return rows


#: why a plan of several agents is not counted
AGENTS_UNCOUNTED = ("a plan of several agents is not counted: callgrind runs one thread at a "
                    "time, and the agents' spin-waits are the hand-off's work, not the plan's")


def marks_kind(runtime: Runtime) -> str | None:
    """How `runtime`'s worker marks counted segments: "client-request" (a Python worker),
    "fsync" (a JavaScript worker that can), or None (it cannot: it is not counted)."""
    return runtime.INSTS_MARKS or ("client-request" if "harness.worker" in runtime.insts_argv()
                                   else None)


def can_count(runtime: Runtime) -> bool:
    return marks_kind(runtime) is not None


def counted_together(cell: Cell) -> tuple[str, str, str]:
    """Which cells share a counted worker (the same key): a Python worker counts every cell
    of its runtime and side, since its start-up under valgrind (10-20 s) is the cost; a
    JavaScript worker the cells of one workload (a comparison group), since V8's counts
    moved with how many plans its process had run before (measured: the 44 V8 cells of the
    quick suite counted twice in one worker each, 22 identical and one 26% apart; counted
    per workload, 34 identical and all 44 within 0.01%), and Node starts in seconds."""
    workload = cell.workload.spec if marks_kind(cell.runtime) == "fsync" else ""
    return (cell.runtime.spec, cell.side, workload)


def count_insts(runtime: Runtime, plans: Mapping[str, Plan],
                data: Mapping[str, Mapping[str, np.ndarray]], workdir: Path,
                timeout_s: float = 900.0, cache: bool = False) -> dict[str, dict[str, Any]]:
    """Plan name -> {"insts": instructions per inference} or {"insts": None,
    "insts_reason": why}; `data` holds each plan's inputs and weights, by plan name. With
    `cache`, callgrind simulates the caches and each count has `l1_misses` and
    `ll_misses` per inference too (`MISSES`)."""
    def none(why: str) -> dict[str, dict[str, Any]]:
        return {name: {"insts": None, "insts_reason": why} for name in plans}

    argv = runtime.insts_argv()
    kind = marks_kind(runtime)
    if kind is None:
        return none(f"{runtime.spec}'s worker cannot mark callgrind segments (no client "
                    "requests, no fsync marks)")
    try:
        prefix = valgrind.command(workdir / "callgrind.out", kind, cache)
        marks = valgrind.marks_library() if kind == "client-request" else None
    except ToolUnavailable as exc:
        return none(str(exc))
    paths: dict[str, str] = {}
    inputs: dict[str, Any] = {}
    saved: dict[int, dict[str, Any]] = {}
    for name, plan in plans.items():
        paths[name] = str(workdir / f"{name}.plan.json")
        Path(paths[name]).write_text(plan.to_json(), encoding="utf-8")
        # one set of files per distinct data (a workload's), in a folder of its own
        key = id(data[name])
        if key not in saved:
            folder = workdir / f"data{len(saved)}"
            folder.mkdir()
            saved[key] = save_tensors(folder, data[name])
        inputs[name] = saved[key]
    request = workdir / "insts-request.json"
    request.write_text(json.dumps({"kind": "insts", "runtime": runtime.spec,
                                   "plans": paths, "inputs": inputs,
                                   "marks": str(marks),
                                   "inferences": list(COUNTED_SEGMENTS),
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
    counted = resp.get("counted", {})
    if kind == "fsync":
        return _from_ordered(plans, counted,
                             valgrind.read_ordered_dumps(workdir, "callgrind.out"))
    dumps = valgrind.read_dumps(workdir, "callgrind.out")
    out: dict[str, dict[str, Any]] = {}
    for name in plans:
        seg = [dumps.get(f"{name}:{k}") for k in range(len(COUNTED_SEGMENTS))]
        if counted.get(name) or None in seg:
            out[name] = {"insts": None,
                         "insts_reason": counted.get(name) or "callgrind wrote no dump"}
        else:
            out[name] = _per_inference([x for x in seg if x is not None])
    return out


def _median_of_pairs(seg: Sequence[int]) -> int:
    """A count per inference: the median over the pairs of segments of their difference
    over the difference of their lengths."""
    a, b = SEGMENTS
    return round(statistics.median((seg[k + 1] - seg[k]) / (b - a)
                                   for k in range(0, len(seg), 2)))


def _per_inference(seg: Sequence[Mapping[str, int]]) -> dict[str, Any]:
    """Instructions per inference from the segments' events and, where the caches were
    simulated, the misses at each level (`MISSES`), each by `_median_of_pairs`."""
    out: dict[str, Any] = {"insts": _median_of_pairs([s["Ir"] for s in seg])}
    if all("D1mr" in s for s in seg):
        for name, events in MISSES.items():
            out[name] = _median_of_pairs([sum(s.get(e, 0) for e in events) for s in seg])
    return out


def _from_ordered(plans: Mapping[str, Plan], counted: Mapping[str, str],
                  dumps: list[dict[str, int]]) -> dict[str, dict[str, Any]]:
    """Counts from fsync-marked dumps: each plan made 1 + len(COUNTED_SEGMENTS) marks in
    plan order (its warm-up, then each segment), the dump before a mark holding what ran
    since the one before."""
    per = 1 + len(COUNTED_SEGMENTS)
    # the worker's response is written with one more fsync, after every mark; any other
    # number means an fsync the marks did not make, and the segments would shift
    if len(dumps) not in (per * len(plans), per * len(plans) + 1):
        why = (f"callgrind wrote {len(dumps)} dumps; {per * len(plans)} marks (and the "
               "response's) were expected")
        return {name: {"insts": None, "insts_reason": why} for name in plans}
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(plans):
        failed = counted.get(name)
        out[name] = ({"insts": None, "insts_reason": failed} if failed else
                     _per_inference(dumps[per * i + 1: per * (i + 1)]))
    return out

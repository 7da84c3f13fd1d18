"""A comparison group that holds both drivers of one engine, in one process: plans driven
from Python through the embedding (`harness.worker.variant`, as the engine's own worker
does) beside plans run as one linked program whose wasm driver does the set-up and the
inferences (`harness.standalone.wasm_program`), all sampled in one rotation
(`measure.time_interleaved`).

So `wasmtime` and `wasmtime:driver=linked` of one workload pair sample by sample: a
strategy's embedded / linked ratio is what driving its dispatches from Python costs,
measured in the same passes with the same clock. Python times the linked variants too,
around one call into the program per batch (`mb_run(variant, n)`, through the
embedding's cheapest call: about 2 µs per sample of at least `sample_s`, 10 ms by default,
so under 0.05%); their cold first inference includes that one call.

The linked variants of a group are one program, one instance (several where one would
hold more memories than engines validate: `program_parts`; Python's rotation still pairs
them all): a trap in one variant's inference ends that variant alone (the others' state is
their own globals and memories); a program that cannot be linked or instantiated is built
again one variant at a time, so only the variants that fail alone fail.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.protocol import load_tensors
from harness.plugins.plan import Plan
from harness.plugins.registry import RUNTIMES, Registry
from harness.runtimes.base import Backend, Runtime, RuntimeUnsupported
from harness.standalone.link import program_parts
from harness.standalone.linked import WasmtimeLinked
from harness.standalone.program import lower_plans
from harness.standalone.runner import ProgramRunner, Variant
from harness.standalone.runner import runtime_info as program_info
from harness.standalone.wasm_program import (
    FN_AFTER,
    FN_INFER,
    FN_RESET,
    FN_SAVE,
    FN_SETUP,
    linked_program,
    parse_report,
    write_outputs,
)
from harness.worker.group import Blame, failure, group_summary
from harness.worker.main import runtime_info
from harness.worker.measure import (
    Batch,
    MeasureSettings,
    Timing,
    clock_of,
    time_cold,
    time_interleaved,
)
from harness.worker.variant import (
    LoadedVariant,
    finish_variant,
    load_variant,
    peak_rss,
    slowdown_of,
)


class LinkedVariants:
    """Some plans of a group as one linked program, instantiated here; Python starts its
    driver functions through the embedding's raw call (`Backend.make_call`)."""

    def __init__(self, linked: WasmtimeLinked, plans: Sequence[Plan],
                 tensors: dict[str, bytes], settings: MeasureSettings) -> None:
        self.program = lower_plans(plans)
        t0 = time.perf_counter()
        wasm, self.lay = linked_program(self.program, settings, tensors)
        self.link_s = time.perf_counter() - t0
        self.be: Backend = linked.embedded
        self.store, self.instance, _, self.compile_s = linked.instantiate(wasm)
        self._batches: dict[tuple[int, int], Callable[[], None]] = {}

    def call(self, v: int, k: int) -> Callable[[], None]:
        """Driver function `k` (FN_*) of program variant `v`, as a zero-argument call."""
        return self.be.make_call(self.store, self.instance, "mb_fn", (v, k))

    def repeat(self, v: int) -> Batch:
        """`n` inferences of variant `v` in one call (one call object per batch size)."""
        def run(n: int) -> None:
            f = self._batches.get((v, n))
            if f is None:
                f = self._batches[(v, n)] = self.be.make_call(self.store, self.instance,
                                                              "mb_run", (v, n))
            f()
        return run

    def report(self) -> list[dict[str, Any]]:
        """Every variant's counters and outputs, from the report area in memory 0."""
        memory = self.be.export(self.store, self.instance, "memory")
        raw = self.be.memory_array(self.store, memory)[self.lay.report:self.lay.end]
        return parse_report(raw.tobytes(), self.program, self.lay)  # type: ignore[return-value]


def build_linked(linked: WasmtimeLinked, plans: dict[int, Plan], tensors: dict[str, bytes],
                 settings: MeasureSettings, results: list[dict[str, Any] | None]
                 ) -> dict[int, tuple[LinkedVariants, int]]:
    """Request index -> (its program, its index there) for every plan the back end can
    run; the others get their result. The plans are as few programs as the memory limit
    allows (`program_parts`); a program that cannot be linked or instantiated is tried
    one plan at a time: those that fail alone get the failure, the rest are built again
    together."""
    traps = linked.embedded.trap_types()
    ok = []
    for i, plan in plans.items():
        try:
            linked.prepare(plan)
            ok.append(i)
        except RuntimeUnsupported as exc:
            results[i] = {"status": "unsupported", "message": str(exc)}
    at: dict[int, tuple[LinkedVariants, int]] = {}
    if not ok:
        return at
    for part in program_parts(lower_plans([plans[i] for i in ok]).variants,
                              linked.MAX_MEMORIES):
        held = [ok[k] for k in part]
        lv = _program(linked, [plans[i] for i in held], tensors, settings)
        if isinstance(lv, BaseException) and len(held) > 1:
            fine = []
            for i in held:
                alone = _program(linked, [plans[i]], tensors, settings)
                if isinstance(alone, BaseException):
                    results[i] = failure(alone, traps)
                else:
                    fine.append(i)
            held = fine
            lv = _program(linked, [plans[i] for i in held], tensors, settings) if held else lv
        if isinstance(lv, BaseException):  # alone, or each links alone but not together
            for i in held:
                results[i] = failure(lv, traps)
            continue
        at.update({i: (lv, k) for k, i in enumerate(held)})
    return at


def _program(linked: WasmtimeLinked, plans: Sequence[Plan], tensors: dict[str, bytes],
             settings: MeasureSettings) -> LinkedVariants | BaseException:
    try:
        return LinkedVariants(linked, plans, tensors, settings)
    except Exception as exc:
        return exc


def run_paired_group(req: dict[str, Any], rt: Runtime, linked: WasmtimeLinked,
                     out_dir: Path) -> dict[str, Any]:
    """A group request whose variants name their runtime (`runtime`, the worker's own
    when absent): `rt`'s variants as one linked program, its twins' through their
    embedding (`Runtime.group_spec`)."""
    data = load_tensors(req["inputs"])
    settings = MeasureSettings.from_dict(req.get("settings", {}))
    clock = clock_of(settings)
    entries = req["variants"]
    n = len(entries)
    plans = [Plan.from_json(Path(e["plan_path"]).read_text(encoding="utf-8")) for e in entries]
    specs = [e.get("runtime") or rt.spec for e in entries]
    results: list[dict[str, Any] | None] = [None] * n
    runtimes: dict[str, tuple[Runtime, Backend]] = {}
    for spec in set(specs) - {rt.spec}:
        twin = Registry[Runtime](RUNTIMES, "runtime").create(spec)
        if twin.group_spec() != rt.group_spec():
            raise RuntimeUnsupported(f"{rt.spec}'s worker runs no variants of {spec}")
        runtimes[spec] = (twin, twin.backend())
    runner = ProgramRunner(rt, linked, out_dir)
    blame = Blame(req.get("blame_path"))
    t0 = time.perf_counter()
    try:
        at = build_linked(linked, {i: plans[i] for i in range(n) if specs[i] == rt.spec},
                          {k: np.ascontiguousarray(a).tobytes() for k, a in data.items()},
                          settings, results)
        loaded: dict[int, LoadedVariant] = {}
        setup_s: dict[int, float] = {}
        alive: list[int] = []
        runs: list[Callable[[], None]] = []
        repeats: list[Batch | None] = []
        firsts: list[float] = []
        for i in range(n):
            if results[i] is not None:
                continue
            blame(i)
            try:
                if i in at:
                    lv, k = at[i]
                    ts = clock()
                    lv.call(k, FN_SETUP)()
                    setup_s[i] = (clock() - ts) / 1e9
                    lv.call(k, FN_RESET)()
                    first = time_cold(lv.call(k, FN_INFER), clock)
                    lv.call(k, FN_SAVE)()
                    lv.call(k, FN_RESET)()
                    runs.append(lv.call(k, FN_INFER))
                    repeats.append(lv.repeat(k))
                    firsts.append(first)
                else:
                    loaded[i] = load_variant(runtimes[specs[i]][1], plans[i], data, settings)
                    runs.append(loaded[i].lp.run_once)
                    repeats.append(None)
                    firsts.append(loaded[i].first_s)
                alive.append(i)
            except Exception as exc:
                results[i] = failure(exc, _traps(i, at, linked, runtimes, specs))
        t1 = time.perf_counter()
        timings = time_interleaved(
            runs, settings, firsts, clock, switch=lambda k: blame(alive[k]),
            slowdowns=[slowdown_of(runtimes[specs[i]][0] if i in loaded else rt)
                       for i in alive], repeats=repeats)
        t2 = time.perf_counter()
        got = dict(zip(alive, timings, strict=True))
        for i, timing in got.items():
            if not isinstance(timing, Timing):
                results[i] = failure(timing, _traps(i, at, linked, runtimes, specs))
        shared = len(alive) > 1
        for i in alive:
            if results[i] is not None or i not in loaded:
                continue
            blame(i)
            twin, be = runtimes[specs[i]]
            timing = got[i]
            assert isinstance(timing, Timing)
            try:
                results[i] = {**finish_variant(loaded[i], timing, be, data, settings, out_dir,
                                               prefix=f"v{i}_", shared_process=shared),
                              "runtime": runtime_info(twin, be)}
            except Exception as exc:
                results[i] = failure(exc, be.trap_types())
        mine = [i for i in alive if results[i] is None and i in at]
        for lv in {id(at[i][0]): at[i][0] for i in mine}.values():
            _finish_linked(lv, [i for i in mine if at[i][0] is lv], at, plans, got, setup_s,
                           settings, runner, shared, results)
    finally:
        blame.close()
    return {"status": "ok", "message": "", "variants": results,
            "group": group_summary(n, settings, t0, t1, t2)}


def _traps(i: int, at: dict[int, tuple[LinkedVariants, int]], linked: WasmtimeLinked,
           runtimes: dict[str, tuple[Runtime, Backend]],
           specs: Sequence[str]) -> tuple[type[BaseException], ...]:
    return linked.embedded.trap_types() if i in at else runtimes[specs[i]][1].trap_types()


def _finish_linked(lv: LinkedVariants, mine: Sequence[int],
                   at: dict[int, tuple[LinkedVariants, int]],
                   plans: Sequence[Plan], got: dict[int, Timing | BaseException],
                   setup_s: dict[int, float], settings: MeasureSettings,
                   runner: ProgramRunner, shared: bool,
                   results: list[dict[str, Any] | None]) -> None:
    """The linked variants' responses, as the standalone worker gives them for a program
    that measured itself (`ProgramRunner.response`), with Python's timings."""
    for i in mine:
        lv.call(at[i][1], FN_AFTER)()
    reports = lv.report()
    info = program_info(runner.rt, runner)
    with tempfile.TemporaryDirectory(dir=runner.out_dir, prefix="program-") as tmp:
        t = Path(tmp)
        for i in mine:
            timing = got[i]
            assert isinstance(timing, Timing)
            r = dict(reports[at[i][1]])
            write_outputs(r, t, i)
            r.update(setup_s=setup_s[i], first_s=timing.first_s,
                     warmup_runs=timing.warmup_runs, warmup_s=timing.warmup_s,
                     steady=timing.steady, inner=timing.inner,
                     rewarm_runs=timing.rewarm_runs, samples_s=timing.samples_s,
                     passes=timing.passes,
                     phases={"link_s": lv.link_s,
                             "compile_s": {"linked program": lv.compile_s}})
            results[i] = {**runner.response(Variant(plans[i]), r, t, peak_rss(), shared, i,
                                            settings.clock), "runtime": info}

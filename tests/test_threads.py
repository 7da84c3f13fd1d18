"""threads=N: agents call the kernels at once over one shared heap. Every request of every
concurrent inference matches NumPy; agents run on threads of their own, pinned to CPUs of
their own, from stores of their own; plans that would share a memory or a CPU the wrong
way are refused with the reason; engines without threads say so."""

from __future__ import annotations

import dataclasses
import itertools
import os
import re
import time

import numpy as np
import pytest

from harness.core.errors import PlanError, SpecError, Unsupported
from harness.plugins.plan import Call, Device, Memory, Parallel, Plan
from harness.plugins.requests import output_names, request_data, request_reference
from harness.runtimes.agents import AgentPool
from harness.runtimes.base import RuntimeUnsupported
from harness.worker.inprocess import load, run_and_verify
from tests.probed import probe_of, probed_row

GEMM = "gemm:m=97,n=64,k=48"   # 97 rows: the agents' slices differ (48 and 49)


def _plan(regs, workload: str, strategy: str) -> Plan:
    return regs.strategies.create(strategy).plan(regs.workloads.create(workload))


@pytest.mark.parametrize("strategy", [
    "shared:threads=1", "shared:threads=2", "multi-memory:threads=2",
    "shared:threads=2,split=batch", "multi-memory:threads=2,split=batch",
])
@pytest.mark.parametrize("workload", [
    GEMM, "gemm:m=33,n=20,k=17,isa=scalar", "mlp",
    # output rows of a strided, padded convolution: each agent's band clips differently
    "conv2d:h=17,w=9,stride=2,pad=1,cin=5,cout=7", "conv2d:h=9,w=9,isa=scalar",
    "kws-dscnn",  # depthwise and pooling kernels that cannot be split run on agent 0
])
def test_every_request_of_a_concurrent_inference_matches_numpy(regs, workload: str,
                                                               strategy: str) -> None:
    rt = regs.runtimes.create("wasmtime")
    verdict = run_and_verify(regs.workloads.create(workload), regs.strategies.create(strategy),
                             rt)
    assert verdict.ok, verdict.message


def test_rows_split_among_agents_each_on_its_own_device(regs) -> None:
    plan = _plan(regs, GEMM, "shared:threads=2")
    assert plan.agents() == 2 and plan.requests == 1
    heap = plan.memory("heap")
    assert heap.shared and heap.max_pages == heap.min_pages
    (step,) = [s for s in plan.run if isinstance(s, Parallel)]
    agent_of = {i.name: {d.name: d.agent for d in plan.devices}[i.device]
                for i in plan.instances}
    assert [[agent_of[c.instance] for c in b] for b in step.branches] == [[0], [1]]
    # the second agent's slice starts 48 rows into A and C; both read all of B
    (a0, b0, c0, s0), (a1, b1, c1, s1) = (b[0].args for b in step.branches)
    assert (a1 - a0, c1 - c0, b1 - b0) == (48 * 48 * 4, 48 * 64 * 4, 0)
    assert s0 != s1, "each agent's scratch is its own region of the heap"
    assert "threads" in plan.requires and plan.calls_per_run() == 2


def test_a_convolution_splits_by_output_rows_of_one_image(regs) -> None:
    plan = _plan(regs, "conv2d:h=17,w=9,stride=2,pad=1,cin=5,cout=7", "shared:threads=2")
    (step,) = [s for s in plan.run if isinstance(s, Parallel)]
    (_, _, _, y0, _), (_, _, _, y1, _) = (b[0].args for b in step.branches)
    assert y1 - y0 == 4 * 4 * 5 * 7  # 9 output rows of 5 pixels, 7 channels: agent 1 from row 4
    batch = _plan(regs, "conv2d:batch=2,h=8,w=8", "shared:threads=2")
    assert not any(isinstance(s, Parallel) for s in batch.run), \
        "two images' row bands are not contiguous: agent 0 runs the whole convolution"


def test_multi_memory_gives_each_agent_a_private_scratch_memory(regs) -> None:
    plan = _plan(regs, GEMM, "multi-memory:threads=2")
    private = [m for m in plan.memories if m.role == "private"]
    assert sorted(m.instance for m in private) == ["gemm#0", "gemm#1"]
    assert plan.expected_counts()["memories"] == 3


def test_a_batch_serves_one_request_per_agent_with_inputs_of_its_own(regs) -> None:
    w = regs.workloads.create(GEMM)
    plan = _plan(regs, GEMM, "shared:threads=3,split=batch")
    assert plan.requests == 3
    assert output_names(w, 3) == ["c", "c@1", "c@2"]
    data = request_data(w, 0, 3)
    assert not np.array_equal(data["a"], data["a@1"])
    ref = request_reference(w, data, 3)
    assert not np.allclose(ref["c"], ref["c@2"])
    regions = [plan.placement(n) for n in ("a", "a@1", "a@2", "c", "c@1", "c@2")]
    ends = sorted((r.offset, r.end) for r in regions)
    assert all(e <= s for (_, e), (s, _) in itertools.pairwise(ends)), \
        "requests run at once: no two share bytes"


def test_a_request_that_reads_another_requests_input_fails_verification(regs) -> None:
    w = regs.workloads.create(GEMM)
    plan = _plan(regs, GEMM, "shared:threads=2,split=batch")
    wrong = tuple(dataclasses.replace(s, tensor="a") if getattr(s, "tensor", "") == "a@1"
                  else s for s in plan.run)
    lp, data = load(w, regs.strategies.create("shared:threads=2,split=batch"),
                    regs.runtimes.create("wasmtime"))
    lp.plan = dataclasses.replace(plan, run=wrong)
    lp._steps = lp.compile_steps(lp.plan.run)
    lp.run_once()
    from harness.plugins.verify import compare
    from harness.worker.inprocess import outputs

    verdict = compare(outputs(lp, w), request_reference(w, data, 2), w.tolerance())
    assert not verdict.ok and verdict.tensor == "c@1"


@pytest.mark.parametrize("spec,why", [
    ("shared:split=batch", "split= is for threads=N"),
    ("shared:threads=2,memory64=1", "memory64=True"),
    ("multi-memory:threads=2,weights=separate", "weights=separate"),
])
def test_parameters_threads_does_not_take_are_refused(regs, spec: str, why: str) -> None:
    with pytest.raises(SpecError, match=why):
        regs.strategies.create(spec)


@pytest.mark.parametrize("workload,why", [
    ("gemm:m=16,n=16,k=16,toolchain=clang", "stack"),
    ("decode:tokens=4", "maximum size"),
])
def test_workloads_agents_cannot_share_are_refused(regs, workload: str, why: str) -> None:
    try:
        with pytest.raises(Unsupported, match=why):
            _plan(regs, workload, "shared:threads=2")
    except Exception as exc:  # clang missing: the tool's own error, not this test's concern
        if "clang" in str(exc) and "stack" not in str(exc):
            pytest.skip(str(exc))
        raise


def test_a_plan_never_puts_two_agents_on_one_cpu(regs) -> None:
    home = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(home)})
    try:
        with pytest.raises(RuntimeUnsupported, match="agents never share a CPU"):
            load(regs.workloads.create(GEMM), regs.strategies.create("shared:threads=2"),
                 regs.runtimes.create("wasmtime"))
    finally:
        os.sched_setaffinity(0, home)


_MEET = ('(module (import "env" "m" (memory 1 1 shared))'
         ' (func (export "meet") (local $n i32) (i32.atomic.store (i32.const 4) (i32.const 1))'
         '  (local.set $n (i32.const 2000000000))'
         '  (loop $l (br_if $l (i32.and (i32.eqz (i32.atomic.load (i32.const 0)))'
         '   (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))'
         ' (func (export "boom") unreachable))')


def test_agents_run_at_once_on_threads_and_cpus_of_their_own() -> None:
    """Agent 1's kernel announces itself and waits for the worker's thread, which waits for
    it in branch 0: the step ends only if both run at once. Agent 1 serves from its own
    store, on its own thread, pinned to a CPU of its own; a trap in its kernel is raised
    by run(), and the pool serves the next step."""
    from harness.codegen.module import assemble
    from harness.plugins.plan import Import, Module
    from harness.runtimes.agents import AgentCall
    from harness.runtimes.base import TrapError
    from harness.runtimes.wasmtime_runtime import WasmtimeBackend

    be = WasmtimeBackend("guard", "speed")
    stores = [be.new_store(Device(f"a{i}")) for i in range(2)]
    mem = be.new_memory(stores[0], Memory("m", "a0", "host", min_pages=1, max_pages=1,
                                          shared=True))
    inst = be.instantiate(stores[1], be.compile(stores[1], Module("meet", assemble(_MEET))),
                          [(Import("env", "m", "memory", "m"), mem)])
    steps = [[[], [AgentCall(be.export(stores[1], inst, name), ())]]
             for name in ("meet", "boom")]
    pool = AgentPool(2, be, stores, steps)
    words = be.memory_array(stores[0], mem).view(np.int32)

    def meet() -> None:
        deadline = time.monotonic() + 10
        while words[1] != 1:  # agent 1 is in its kernel
            assert time.monotonic() < deadline, "agent 1 never ran while branch 0 did"
        words[0] = 1

    try:
        home = os.sched_getaffinity(0)
        pool.run(0, meet)
        assert words[1] == 1 and words[0] == 1
        assert os.sched_getaffinity(0) == home, "the worker's thread gets its CPUs back"
        assert pool.native_ids[0] != pool.native_ids[1]
        assert pool.cpus[0] != pool.cpus[1]
        assert os.sched_getaffinity(pool.native_ids[1]) == {pool.cpus[1]}
        with pytest.raises(TrapError, match="unreachable"):
            pool.run(1, lambda: None)
        pool.run(-1, lambda: None)  # the pool goes on after a failed step
        assert pool.handoff_s(batches=1, steps=20) > 0
    finally:
        pool.close()


def test_plan_checks_what_agents_share() -> None:
    base = Plan.from_json(Plan(
        workload="w", strategy="s", devices=(Device("d0"), Device("d1", agent=1)),
        memories=(Memory("m", "d0", "host", min_pages=1, max_pages=1, shared=True),),
        modules=(), instances=(), placements=(), setup=(), run=()).to_json())
    assert base.agents() == 2
    with pytest.raises(PlanError, match="needs a maximum"):
        dataclasses.replace(base, memories=(Memory("m", "d0", "host", min_pages=1,
                                                   shared=True),)).validate()


def test_a_parallel_step_round_trips_and_is_checked(regs) -> None:
    plan = _plan(regs, GEMM, "multi-memory:threads=2")
    assert Plan.from_json(plan.to_json()) == plan
    (step,) = [s for s in plan.run if isinstance(s, Parallel)]
    swapped = Parallel(tuple(reversed(step.branches)))
    with pytest.raises(PlanError, match="branch 0 calls gemm#1"):
        dataclasses.replace(plan, run=tuple(swapped if s is step else s
                                            for s in plan.run)).validate()
    outside = dataclasses.replace(plan, run=(*plan.run, step.branches[1][0]))
    with pytest.raises(PlanError, match="runs on agent 0"):
        outside.validate()
    unshared = dataclasses.replace(plan, memories=tuple(
        dataclasses.replace(m, shared=False) if m.id == "heap" else m for m in plan.memories))
    with pytest.raises(PlanError, match="only a shared memory"):
        unshared.validate()
    assert isinstance(step.branches[0][0], Call)


@pytest.mark.parametrize("runtime", ["wasmtime", "v8"])
@pytest.mark.parametrize("strategy,calls", [("shared:threads=2,split=batch", 2),
                                            ("multi-memory:threads=2", 2)])
def test_a_concurrent_cell_through_the_worker(regs, quick_settings, runtime: str,
                                              strategy: str, calls: int) -> None:
    """As `membench run` runs it (threads of the Python worker; worker_threads of Node's):
    verified (every request), counted, the agents' CPUs and the hand-off's cost in the row."""
    if probe_of(runtime).status != "ok":
        pytest.skip(probe_of(runtime).message)
    row = probed_row(regs, quick_settings, GEMM, strategy, runtime)
    assert row.status == "ok", row.reason
    agents = row.timing["agents"]
    assert agents["agents"] == 2 and len(set(agents["cpus"])) == 2
    assert 0 < agents["handoff_s"] < row.median_s * 10
    assert row.counters["calls"] == calls
    assert row.memory["memories"] == row.expected_counts["memories"]


def test_a_node_worker_refuses_more_agents_than_cpus(regs, quick_settings) -> None:
    if probe_of("v8").status != "ok":
        pytest.skip(probe_of("v8").message)
    n = len(os.sched_getaffinity(0)) + 1
    row = probed_row(regs, quick_settings, GEMM, f"shared:threads={n}", "v8")
    assert row.status == "unsupported" and "agents never share a CPU" in row.reason, row.reason


def test_an_agent_that_traps_fails_the_cell(regs, quick_settings, tmp_path) -> None:
    """Agent 1's kernel reads past the heap: the Node worker's cell is trapped, not ok."""
    from harness.core.protocol import save_tensors
    from harness.worker.launch import run_worker

    if probe_of("v8").status != "ok":
        pytest.skip(probe_of("v8").message)
    w = regs.workloads.create(GEMM)
    plan = _plan(regs, GEMM, "shared:threads=2")
    (step,) = [s for s in plan.run if isinstance(s, Parallel)]
    bad = dataclasses.replace(step.branches[1][0], args=(1 << 30, *step.branches[1][0].args[1:]))
    plan = dataclasses.replace(plan, run=tuple(
        Parallel((step.branches[0], (bad,))) if s is step else s for s in plan.run))
    (tmp_path / "plan.json").write_text(plan.to_json())
    out = run_worker(regs.runtimes.create("v8"), {
        "kind": "cell", "runtime": "v8", "plan_path": str(tmp_path / "plan.json"),
        "inputs": save_tensors(tmp_path, w.generate(0)),
        "settings": {"warmup_s": 0.0, "warmup_runs": 1, "sample_s": 0.0005, "samples": 2}},
        tmp_path, 60)
    assert out.status == "trapped" and "agent 1" in out.message, out.message


@pytest.mark.parametrize("runtime", ["wasmer", "wasm3", "jsc"])
def test_engines_without_agents_say_why(regs, quick_settings, runtime: str) -> None:
    if probe_of(runtime).status != "ok":
        pytest.skip(probe_of(runtime).message)
    row = probed_row(regs, quick_settings, GEMM, "shared:threads=2", runtime)
    assert row.status == "unsupported" and re.search(r"lacks [a-z0-9, -]*threads", row.reason), \
        row.reason


@pytest.mark.parametrize("runtime", ["wasmtime", "v8"])
def test_a_racing_writer_corrupts_shared_scratch_and_not_private_scratch(regs,
                                                                         runtime: str) -> None:
    """The race probe: agent 1's racer stores over agent 0's scratch address while agent
    0's GEMM runs. Under shared it lands in agent 0's packing panels; under multi-memory
    in the racer's own private memory."""
    from harness.probes.race import RUNS, run_race

    if probe_of(runtime).status != "ok":
        pytest.skip(probe_of(runtime).message)
    rt = regs.runtimes.create(runtime)
    shared = run_race(regs.strategies.create("shared:threads=2"), rt, "t", regs.workloads)
    private = run_race(regs.strategies.create("multi-memory:threads=2"), rt, "t",
                       regs.workloads)
    assert shared.status == "ok" and shared.metrics["outcome"] == "corrupted", shared.reason
    assert shared.metrics["corrupted_runs"] >= 1
    assert private.status == "ok" and private.metrics["outcome"] == "contained", private.reason
    assert private.metrics["runs"] == RUNS and private.metrics["corrupted_runs"] == 0
    single = run_race(regs.strategies.create("shared:threads=2,split=batch"), rt, "t",
                      regs.workloads)
    assert single.status == "unsupported" and "split=rows" in single.reason


@pytest.mark.parametrize("strategy,outcome", [("shared:threads=2", "leaked"),
                                              ("multi-memory:threads=2", "contained"),
                                              ("shared:threads=2,split=batch", "unsupported")])
def test_the_isolation_probes_run_on_plans_of_agents(regs, strategy: str, outcome: str) -> None:
    """`membench isolation` on a threads variant: the victim's scratch is found inside a
    plan of agents and the outcome is the strategy's; a batch, whose requests would race
    each other, is refused with the reason (the race probe is for that)."""
    from harness.probes.isolation import run_probe

    row = run_probe("scratch-read", regs.strategies.create(strategy),
                    regs.runtimes.create("wasmtime"), "t")
    if outcome == "unsupported":
        assert row.status == "unsupported" and "race" in row.reason, row.reason
        return
    assert row.status == "ok" and row.metrics["outcome"] == outcome, row.reason

"""The memory strategies: hand-calculated copies, residency, memory census, every workload."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pytest

from harness.cli.export import variant_specs
from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel
from harness.codegen.kernel import SCRATCH
from harness.core.errors import Unsupported
from harness.plugins.allocator import lifetimes
from harness.plugins.plan import PAGE, Call, Copy
from harness.plugins.wasmbin import module_info
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from harness.run.cell import run_cell
from harness.run.request import Cell, Registries
from tests.kernelrun import run_verified

MINE = ("per-module", "per-module:resident=1", "shared", "multi-memory",
        "multi-memory:weights=separate", "per-device", "per-device:engine=shared")

# mlp:batch=64,sizes=64-32-10, f32 = 4 bytes
X, W0, B0, H0 = 64 * 64 * 4, 64 * 32 * 4, 32 * 4, 64 * 32 * 4
W1, B1, Y = 32 * 10 * 4, 10 * 4, 64 * 10 * 4
HAND = {
    # every bound tensor copied into the module before its dispatch, outputs copied back:
    # dense0: x, w0, b0 in, h0 out; dense1: h0, w1, b1 in, y out
    "per-module": (X + W0 + B0) + H0 + (H0 + W1 + B1) + Y,
    # weights resident since set-up, x uploaded into dense0, y read from dense1:
    # only h0 crosses from dense0's memory into dense1's
    "per-module:resident=1": H0,
    "shared": 0,
    "multi-memory": 0,
    "multi-memory:weights=separate": 0,
    # h0 is produced on dev0 and transferred to dev1
    "per-device": H0,
}
# wasm memories: per-module one per module; shared one heap; multi-memory the heap (and the
# weights memory) plus one private memory per module; per-device one per device
MEMORIES = {"per-module": 2, "per-module:resident=1": 2, "shared": 1, "multi-memory": 3,
            "multi-memory:weights=separate": 4, "per-device": 2}
CHECK_MLP = "mlp:batch=64,sizes=64-32-10"


def _cell(regs: Registries, w: str | Workload, s: str) -> Cell:
    wl = regs.workloads.create(w) if isinstance(w, str) else w
    return Cell(wl, regs.strategies.create(s), regs.runtimes.create("wasmtime"))


@pytest.mark.parametrize("strategy", sorted(HAND))
def test_bytes_copied_match_hand_calculation(regs, quick_settings, strategy: str) -> None:
    cell = _cell(regs, CHECK_MLP, strategy)
    plan = cell.strategy.plan(cell.workload)
    assert plan.bytes_copied_per_run() == HAND[strategy]
    assert plan.memory_census()[0] == MEMORIES[strategy]
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    assert row.bytes_copied_per_run == HAND[strategy]
    assert row.host_calls_per_run == 0
    assert row.counters["calls"] == 2
    assert row.memory["memories"] == MEMORIES[strategy]
    assert row.memory["linear_bytes"] == plan.memory_census()[1] > 0


def test_multi_memory_numbering_and_requires(regs) -> None:
    w = regs.workloads.create("mlp:batch=2,sizes=8-4-3")
    for spec, order in (("multi-memory", ["env.heap"]),
                        ("multi-memory:weights=separate", ["env.heap", "env.weights"])):
        plan = regs.strategies.create(spec).plan(w)
        assert "multi-memory" in plan.requires
        for m in plan.modules:
            info = module_info(m.wasm)
            assert [f"{i.module}.{i.field}" for i in info.imports if i.kind == "memory"] == order
            assert len(info.defined_memories) == 1  # the private memory: the last index
            assert info.memory_export(0) == "private"
    separate = regs.strategies.create("multi-memory:weights=separate").plan(w)
    assert {separate.placement(t).memory for t in ("w0", "b0", "w1", "b1")} == {"weights"}
    assert {separate.placement(t).memory for t in ("x", "h0", "y")} == {"heap"}


def test_multi_memory_unsupported_without_capability(regs, quick_settings) -> None:
    from harness.probes.probe import ProbeResult

    probe = ProbeResult("wasmtime", "ok", capabilities={
        "imported-memory": {"ok": True}, "multi-memory": {"ok": False, "detail": "no"}})
    row = run_cell(_cell(regs, "mlp:batch=2,sizes=8-4-3", "multi-memory"), "t", quick_settings,
                   60, probe)
    assert row.status == "unsupported" and "multi-memory" in row.reason


def test_resident_weights_are_setup_only(regs) -> None:
    w = regs.workloads.create("mlp:batch=2,sizes=8-6-4-3")
    plan = regs.strategies.create("per-module:resident=1").plan(w)
    written_at_setup = {s.tensor for s in plan.setup}
    assert written_at_setup == {"w0", "b0", "w1", "b1", "w2", "b2"}
    copies = [s for s in plan.run if isinstance(s, Copy)]
    assert [(c.src.memory, c.dst.memory) for c in copies] == [
        ("dense0.memory", "dense1.memory"), ("dense1.memory", "dense2.memory")]


def test_per_device_stores_engines_and_transfers(regs, quick_settings) -> None:
    cell = _cell(regs, "mlp:batch=3,sizes=8-6-4-3", "per-device")
    plan = cell.strategy.plan(cell.workload)
    assert [d.engine for d in plan.devices] == ["dev0", "dev1", "dev2"]
    for c in (s for s in plan.run if isinstance(s, Copy)):
        assert plan.memory(c.src.memory).device != plan.memory(c.dst.memory).device
    shared_engine = regs.strategies.create("per-device:engine=shared").plan(cell.workload)
    assert {d.engine for d in shared_engine.devices} == {"default"}
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert sorted(row.phases["compile_s"]) == sorted(
        f"{i.module}@{i.device}" for i in plan.instances)
    assert sorted(row.phases["instantiate_s"]) == ["dense0", "dense1", "dense2"]
    by_dev = row.memory["linear_bytes_by_device"]
    assert sorted(by_dev) == ["dev0", "dev1", "dev2"] and all(v >= PAGE for v in by_dev.values())


def test_shared_reuses_space_of_dead_intermediates(regs) -> None:
    w = regs.workloads.create("mlp:batch=4,sizes=16-12-8-6-4")  # 4 layers: h0, h1, h2
    plan = regs.strategies.create("shared").plan(w)
    spans = lifetimes(w)
    regions = {t.name: plan.placement(t.name) for t in w.tensors}
    h0, h2 = regions["h0"], regions["h2"]
    assert spans["h0"][1] < spans["h2"][0]
    assert h0.offset < h2.end and h2.offset < h0.end, "h2 should reuse h0's dead space"
    for a in w.tensors:
        for b in w.tensors:
            if a.name < b.name:
                (fa, la), (fb, lb) = spans[a.name], spans[b.name]
                live_together = not (la < fb or lb < fa)
                ra, rb = regions[a.name], regions[b.name]
                overlap = ra.offset < rb.end and rb.offset < ra.end
                assert not (live_together and overlap), (a.name, b.name)
                assert ra.offset % 64 == 0


class _ScratchCopy(Kernel):
    """y = x + `add`, staged through the module's scratch (so scratch must be private)."""

    buffers = (BufferParam("x", "r"), BufferParam("y", "w"))
    scratch_bytes = 64

    def __init__(self, add: float) -> None:
        self.add = add
        self.name = f"scratch_copy_{int(add)}"

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, 16):
            bufs[SCRATCH].store(i, bufs["x"].load(i) + self.add)
        with fb.for_range(i, 0, 16):
            bufs["y"].store(i, bufs[SCRATCH].load(i))


class _ScratchChain(Workload):
    """x -> +1 -> t0 -> +2 -> t1 -> +3 -> y, three modules each with scratch."""

    NAME = "scratch-chain"

    def build_tensors(self) -> tuple[Tensor, ...]:
        return (Tensor("x", "input", (16,)), Tensor("t0", "intermediate", (16,)),
                Tensor("t1", "intermediate", (16,)), Tensor("y", "output", (16,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        chain = ("x", "t0", "t1", "y")
        return tuple(Dispatch(f"step{i}", _ScratchCopy(i + 1.0),
                              (("x", chain[i]), ("y", chain[i + 1]))) for i in range(3))

    def reference(self, data):
        one, two, three = (np.float32(v) for v in (1, 2, 3))
        return {"y": ((data["x"] + one) + two) + three}

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)


def _scratch_regions(plan) -> list[tuple[str, int]]:
    """(memory holding the scratch, scratch offset) of every call (the last argument)."""
    out = []
    for step in plan.run:
        if isinstance(step, Call):
            inst = next(i for i in plan.instances if i.name == step.instance)
            mems = [imp.target for imp in inst.imports if imp.kind == "memory"]
            own = [m.id for m in plan.memories if m.instance == inst.name]
            out.append(((own or mems)[-1], step.args[-1]))
    return out


@pytest.mark.parametrize("strategy", MINE)
def test_every_module_scratch_is_distinct(regs, quick_settings, strategy: str) -> None:
    cell = _cell(regs, _ScratchChain(), strategy)
    plan = cell.strategy.plan(cell.workload)
    scratch = _scratch_regions(plan)
    assert len(scratch) == 3
    if strategy == "shared":  # one memory: distinct, disjoint regions past every tensor
        offs = sorted(off for _, off in scratch)
        assert all(b - a >= 64 for a, b in itertools.pairwise(offs))
        assert offs[0] >= max(p.region.end for p in plan.placements)
    else:  # a memory of its own per module or device
        assert len({mem for mem, _ in scratch}) == 3
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason


def _every_workload(regs: Registries) -> list[str]:
    """Every registered workload at a small shape, with each choice (e.g. isa) varied."""
    return [v for _, cls in regs.workloads for v in variant_specs(cls, small=True)]


@pytest.mark.parametrize("strategy", MINE)
def test_strategy_verifies_every_workload(regs, strategy: str) -> None:
    """In process (the worker path is covered above): outputs within tolerance of NumPy,
    and the executor did exactly the copies, calls and memories the plan predicts."""
    backend = regs.runtimes.create("wasmtime").backend()
    for spec in _every_workload(regs):
        try:
            lp, plan = run_verified(regs, spec, strategy, backend=backend)
        except Unsupported as exc:
            # a C kernel has one memory of plain loads and stores, a strategy may not follow
            # a tensor that grows, and nothing else may refuse a workload:
            # tests/test_clang_kernels.py and tests/test_decode.py cover the refusals
            clang = "toolchain=clang" in spec and "one linear memory" in str(exc)
            grows = "during an inference" in str(exc) and regs.workloads.create(spec).extents()
            assert clang or grows, (spec, exc)
            continue
        memories, linear = lp.memory_census()
        did = {**lp.counters, "memories": memories, "linear_bytes": linear,
               "grows": lp.grow_stats["grows"]}
        for key, want in plan.expected_counts().items():
            assert did[key] == want, f"{spec} under {strategy}: {key} {did[key]} != {want}"


class _GrowingKernel(Kernel):
    """Copies x to y and grows memory 0 by a page on every call: the plan cannot know."""

    name = "grow_copy"
    buffers = (BufferParam("x", "r"), BufferParam("y", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, 4):
            bufs["y"].store(i, bufs["x"].load(i))
        fb.emit("(drop (memory.grow (i32.const 1)))")


class _GrowingWorkload(Workload):
    NAME = "grow-test"

    def build_tensors(self) -> tuple[Tensor, ...]:
        return (Tensor("x", "input", (4,)), Tensor("y", "output", (4,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("grow", _GrowingKernel(), (("x", "x"), ("y", "y"))),)

    def reference(self, data):
        return {"y": data["x"].copy()}

    def tolerance(self) -> Tolerance:
        return Tolerance(0.0, 0.0)


def test_linear_bytes_the_plan_did_not_predict_fail_the_cell(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, _GrowingWorkload(), "shared"), "t", quick_settings, 60)
    assert row.status == "invalid"
    assert "linear_bytes: plan 65536 vs worker" in row.reason
    assert "memories" not in row.reason  # still one memory, as predicted

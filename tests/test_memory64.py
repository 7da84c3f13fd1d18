"""`memory64=1`: every memory of a strategy 64-bit and the kernels' address arithmetic in
i64, verified on every engine that has memory64; engines without it say so."""

from __future__ import annotations

import pytest

from harness.codegen import DirectLowering
from harness.codegen.expr import Expr, i32
from harness.codegen.function import FunctionBuilder
from harness.core.errors import SpecError, Unsupported
from harness.plugins.plan import Call
from harness.plugins.wasmbin import module_info
from harness.probes.probe import ABOVE_4GIB, probe_plan
from tests.probed import probe_of, probed_row

FORMS = ("shared:memory64=1", "per-module:memory64=1", "per-module:resident=1,memory64=1",
         "multi-memory:memory64=1", "multi-memory:weights=separate,memory64=1",
         "per-device:memory64=1")


_row = probed_row


def test_i32_operands_of_i64_arithmetic_are_sign_extended() -> None:
    ptr, idx = Expr("(local.get $p)", "i64"), Expr("(local.get $i)", "i32")
    for e in (ptr + idx * 4, idx * 4 + ptr):
        assert e.ty == "i64" and "i64.extend_i32_s" in e.wat and "i64.add" in e.wat
    with pytest.raises(TypeError):
        _ = idx + Expr("(local.get $x)", "f32")


def test_an_element_index_is_widened_before_it_is_scaled() -> None:
    wide = DirectLowering({"heap": "$heap"}, ['(memory $heap i64 1)'], address_type="i64")
    fb = FunctionBuilder("run", [("p", "i64")], wide)
    buf = fb.buffer("a", fb.param("p"), "heap")
    wat = buf.addr(Expr("(local.get $i)", "i32")).wat
    assert "(i64.shl (i64.extend_i32_s (local.get $i))" in wat, wat


def test_tensors_beyond_the_kernels_offsets_are_refused_before_any_work(regs) -> None:
    big = regs.workloads.create("gemv:m=32768,k=16384")     # a 2 GiB weight
    with pytest.raises(Unsupported, match="2 GiB"):
        regs.strategies.create("shared:memory64=1").plan(big)


def test_a_64_bit_lowering_widens_addresses_and_a_32_bit_one_refuses_them() -> None:
    wide = DirectLowering({"heap": "$heap"}, ['(memory $heap i64 1)'], address_type="i64")
    load = wide.load("heap", i32(16), "f32", 0)
    assert "i64.extend_i32_s" in load.wat
    fb = FunctionBuilder("run", [("p", "i64")], wide)
    assert fb.pointer("q").ty == "i64" and fb.param("p").ty == "i64"
    narrow = DirectLowering({"heap": "$heap"}, ['(memory $heap 1)'])
    with pytest.raises(TypeError, match="32-bit memory"):
        narrow.load("heap", Expr("(local.get $p)", "i64"), "f32", 0)


@pytest.mark.parametrize("workload", ["mlp-digits", "resnet8", "transformer-block",
                                      "gemm:m=37,n=53,k=91,isa=scalar", "conv2d:isa=scalar",
                                      "attention:isa=scalar", "pool:op=avg,pad=1"])
@pytest.mark.parametrize("strategy", FORMS)
def test_every_memory_and_address_is_64_bit(regs, workload: str, strategy: str) -> None:
    plan = regs.strategies.create(strategy).plan(regs.workloads.create(workload))
    assert "memory64" in plan.requires
    assert all(m.memory64 for m in plan.memories if m.kind == "host")
    for mod in plan.modules:
        info = module_info(mod.wasm)
        mems = [*info.defined_memories, *(i.memory for i in info.imports if i.memory)]
        assert mems and all(m.memory64 for m in mems)
    calls = [s for s in plan.run if isinstance(s, Call)]
    assert calls and all(c.arg_type == "i64" for c in calls)


def test_the_32_bit_form_is_unchanged(regs) -> None:
    plan = regs.strategies.create("shared").plan(regs.workloads.create("mlp-digits"))
    assert "memory64" not in plan.requires
    assert all(c.arg_type == "i32" for c in plan.run if isinstance(c, Call))


@pytest.mark.parametrize("runtime", ["wasmtime", "v8", "wasm2c", "wasmtime:driver=linked"])
def test_memory64_cells_verify_beside_their_32_bit_twins(regs, quick_settings,
                                                         runtime: str) -> None:
    """Outputs checked against NumPy, in 64-bit memories; each form's plan counts (copies,
    calls) are those of its 32-bit twin."""
    if probe_of(runtime).status != "ok":
        pytest.skip(probe_of(runtime).message)
    for strategy in FORMS:
        row = _row(regs, quick_settings, "gemm:m=37,n=53,k=91", strategy, runtime)
        twin = _row(regs, quick_settings, "gemm:m=37,n=53,k=91",
                    strategy.replace(",memory64=1", "").replace(":memory64=1", ""), runtime)
        assert row.status == "ok", (strategy, row.reason)
        assert twin.status == "ok", (strategy, twin.reason)
        assert row.counters == twin.counters and row.counters
        assert (row.bytes_copied_per_run, row.calls_per_run) == \
            (twin.bytes_copied_per_run, twin.calls_per_run)


def test_engines_without_memory64_say_so(regs, quick_settings) -> None:
    row = _row(regs, quick_settings, "mlp-digits", "shared:memory64=1", "wasmer")
    if row.status == "unavailable":
        pytest.skip(row.reason)
    assert row.status == "unsupported" and "memory64" in row.reason


def test_forms_that_cannot_be_64_bit_are_refused(regs) -> None:
    with pytest.raises(SpecError, match="memory64=1"):
        regs.strategies.create("multi-memory:built=merge,memory64=1")
    with pytest.raises(SpecError, match="32-bit memories"):
        regs.strategies.create("multi-memory:lowered=1,memory64=1")
    with pytest.raises(Unsupported, match="wasm32"):
        regs.strategies.create("shared:memory64=1").plan(
            regs.workloads.create("gemm:m=8,n=8,k=8,toolchain=clang"))
    with pytest.raises(SpecError, match="memory64"):
        regs.strategies.create("host-call:memory64=1")


def test_the_above_4gib_probe_is_read_above_4gib() -> None:
    plan, expect = probe_plan("memory64-4gib")
    [mem] = plan.memories
    assert mem.kind == "export"
    [mt] = module_info(plan.modules[0].wasm).defined_memories
    assert mt.memory64 and mt.min_pages * 65536 > ABOVE_4GIB > 1 << 32
    assert plan.run[-1].src.offset == ABOVE_4GIB and expect == "2a000000"


def test_wasmtime_addresses_memory_above_4gib() -> None:
    assert probe_of("wasmtime").has("memory64-4gib"), probe_of("wasmtime").capabilities

"""Multi-memory from a real toolchain: a clang kernel merged with heap glue by wasm-merge
(`multi-memory:built=merge`), and Binaryen's lowering of multi-memory modules to one
memory (`multi-memory:lowered=1`) for engines without multi-memory."""

from __future__ import annotations

import pytest

from harness.core.errors import SpecError, Unsupported
from harness.plugins.wasmbin import module_info
from harness.toolchain import binaryen, clang, wasm_tools
from tests.probed import probed_row

NEEDS = [binaryen.wasm_merge(), binaryen.wasm_opt(), clang.find_clang()]
pytestmark = pytest.mark.skipif(any(isinstance(x, str) for x in NEEDS) or
                                wasm_tools.wasm_tools() is None,
                                reason="needs Binaryen, clang-19 and wasm-tools (make env)")
CLANG_GEMM = "gemm:m=37,n=53,k=91,toolchain=clang"


_row = probed_row


@pytest.mark.parametrize("workload", [CLANG_GEMM, "softmax:rows=6,cols=257,toolchain=clang",
                                      "conv2d:h=9,w=9,cin=3,cout=21,isa=scalar,toolchain=clang"])
def test_a_merged_clang_kernel_is_a_valid_two_memory_module_and_verifies(
        regs, quick_settings, workload: str) -> None:
    plan = regs.strategies.create("multi-memory:built=merge").plan(
        regs.workloads.create(workload))
    [module] = plan.modules
    info = module_info(module.wasm)
    # the heap imported as memory 0, the kernel's own memory defined beside it
    assert [(i.module, i.field) for i in info.imports if i.kind == "memory"] == [("env", "heap")]
    assert len(info.defined_memories) == 1 and "multi-memory" in plan.requires
    wasm_tools.validate(module.wasm)
    assert "copies" in plan.notes and plan.bytes_copied_per_run() == 0   # in-module copies
    row = _row(regs, quick_settings, workload, "multi-memory:built=merge", "wasmtime")
    assert row.status == "ok", row.reason


def test_merge_needs_a_toolchain_kernel_and_an_engine_with_multi_memory(regs,
                                                                       quick_settings) -> None:
    with pytest.raises(Unsupported, match="toolchain=clang"):
        regs.strategies.create("multi-memory:built=merge").plan(
            regs.workloads.create("gemm:m=8,n=8,k=8"))
    with pytest.raises(SpecError, match="built=merge"):
        regs.strategies.create("multi-memory:built=merge,lowered=1")
    row = _row(regs, quick_settings, CLANG_GEMM, "multi-memory:built=merge", "wasmer")
    assert row.status == "unsupported" and "multi-memory" in row.reason


@pytest.mark.parametrize("runtime", ["wasmtime", "wasmer", "v8@20"])
def test_lowered_modules_run_where_multi_memory_does_not(regs, quick_settings,
                                                         runtime: str) -> None:
    """wasmer 2.x and Node 20 refuse two memories; the lowered modules have one."""
    native = _row(regs, quick_settings, "mlp-digits", "multi-memory", runtime)
    lowered = _row(regs, quick_settings, "mlp-digits", "multi-memory:lowered=1", runtime)
    if native.status == "unavailable":
        pytest.skip(native.reason)
    assert lowered.status == "ok", lowered.reason
    if runtime != "wasmtime":
        assert native.status == "unsupported" and "multi-memory" in native.reason


def test_the_lowered_plan_is_one_memory_that_holds_the_private_ranges(regs) -> None:
    s = regs.strategies.create("multi-memory:lowered=1")
    plan = s.plan(regs.workloads.create("mlp:batch=5,sizes=64-32-10"))
    assert "multi-memory" not in plan.requires and s.isolation == "none"
    heap = next(m for m in plan.memories if m.id == "heap")
    assert [m.kind for m in plan.memories] == ["host"]
    for module in plan.modules:
        info = module_info(module.wasm)
        [imp] = [i for i in info.imports if i.kind == "memory"]
        assert info.defined_memories == () and imp.memory is not None
        # the heap holds the tensors, then (from `private_base`) the private range
        assert imp.memory.min_pages * 65536 > plan.private_base > 0
        assert heap.min_pages >= imp.memory.min_pages
    with pytest.raises(Unsupported, match="only the first memory can be imported"):
        regs.strategies.create("multi-memory:lowered=1,weights=separate").plan(
            regs.workloads.create("mlp:batch=5,sizes=64-32-10"))

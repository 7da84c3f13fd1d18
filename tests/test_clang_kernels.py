"""C kernels built by clang (`toolchain=clang`): the same buffers, reference and tolerance
as the generated kernels, a link form per strategy, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.codegen.lowering import DirectLowering, MemoryForm
from harness.core.errors import SpecError, ToolUnavailable, Unsupported
from harness.plugins.wasmbin import module_info
from harness.run.cell import run_cell
from harness.run.request import Cell, group_cells
from harness.toolchain import clang
from workloads.kernels.clang import C_DIR

CLANG = clang.find_clang()
needs_clang = pytest.mark.skipif(isinstance(CLANG, str), reason=str(CLANG))
KERNELS = ("gemm:m=37,n=53,k=91", "conv2d:h=9,w=9,cin=3,cout=21",
           "softmax:rows=6,cols=257", "layernorm:rows=5,d=287")


@needs_clang
@pytest.mark.parametrize("isa", ["simd", "scalar"])
@pytest.mark.parametrize("workload", KERNELS)
@pytest.mark.parametrize("strategy", ["shared", "per-module"])
def test_every_c_kernel_verifies_in_both_link_forms(regs, quick_settings, workload: str,
                                                     isa: str, strategy: str) -> None:
    w = regs.workloads.create(f"{workload},isa={isa},toolchain=clang")
    row = run_cell(Cell(w, regs.strategies.create(strategy), regs.runtimes.create("wasmtime")),
                   "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.max_abs_err is not None


@needs_clang
def test_link_forms_follow_the_strategy(regs) -> None:
    """`shared` imports the device heap under the strategy's name; `per-module` defines
    and exports its own memory; tensors start above the C stack in both."""
    w = regs.workloads.create("gemm:m=8,n=8,k=8,toolchain=clang")
    shared = regs.strategies.create("shared").plan(w)
    [imp] = [i for i in module_info(shared.modules[0].wasm).imports]
    assert (imp.module, imp.field, imp.kind) == ("env", "heap", "memory")
    assert min(p.region.offset for p in shared.placements) >= clang.STACK_BYTES
    own = regs.strategies.create("per-module").plan(w)
    info = module_info(own.modules[0].wasm)
    assert info.imports == () and [e.name for e in info.exports if e.kind == "memory"] == [
        "memory"]
    copies = [s for s in own.run if type(s).__name__ == "Copy"]
    assert min(c.dst.offset for c in copies if c.dst.memory != "host") >= clang.STACK_BYTES


@needs_clang
@pytest.mark.parametrize("strategy", ["multi-memory", "multi-memory:weights=separate",
                                      "host-call", "host-call:mode=paged,host=wasm"])
def test_what_c_cannot_express_is_unsupported_with_the_reason(regs, strategy: str) -> None:
    w = regs.workloads.create("gemm:m=8,n=8,k=8,toolchain=clang")
    with pytest.raises(Unsupported, match="one linear memory"):
        regs.strategies.create(strategy).plan(w)


def test_relaxed_simd_is_refused_for_clang(regs) -> None:
    with pytest.raises(SpecError, match="isa=simd or isa=scalar"):
        regs.workloads.create("gemm:isa=relaxed,toolchain=clang")


def test_toolchains_of_one_workload_share_a_comparison_group(regs) -> None:
    s, rt = regs.strategies.create("shared"), regs.runtimes.create("wasmtime")
    cells = [Cell(regs.workloads.create(w), s, rt) for w in (
        "gemm:m=8,n=8,k=8", "gemm:m=8,n=8,k=8,toolchain=clang",
        "gemm:m=8,n=8,k=8,isa=scalar,toolchain=clang", "gemm:m=8,n=8,k=8,isa=scalar")]
    assert group_cells(cells) == [(0, 1), (2, 3)]


def test_a_missing_clang_makes_the_cell_unavailable(regs, quick_settings, monkeypatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setattr(clang, "CLANG_DIRS", (tmp_path,))
    monkeypatch.setattr(clang.shutil, "which", lambda name: None)
    with pytest.raises(ToolUnavailable, match="apt-get install clang-19 lld-19"):
        clang.build_c_kernel(C_DIR / "gemm.c", {"M": 1, "N": 1, "K": 1}, "simd",
                             MemoryForm("define", export="memory", pages=1), (C_DIR,))
    w = regs.workloads.create("gemm:m=8,n=8,k=8,toolchain=clang")
    row = run_cell(Cell(w, regs.strategies.create("shared"), regs.runtimes.create("wasmtime")),
                   "t", quick_settings, 60)
    assert row.status == "unavailable" and "clang-19" in row.reason


@needs_clang
def test_static_data_is_refused(tmp_path: Path, monkeypatch) -> None:
    """Modules importing one memory would each write their data at the same address."""
    monkeypatch.setattr(clang, "CACHE", tmp_path / "cache")
    src = tmp_path / "table.c"
    src.write_text('#include "mb_kernel.h"\nstatic volatile float t[4] = {1, 2, 3, 4};\n'
                   "MB_EXPORT void run(float* y, int i) { y[0] = t[i & 3]; }\n")
    with pytest.raises(Unsupported, match="static data"):
        clang.build_c_kernel(src, {}, "scalar", MemoryForm("import", "env", "heap"), (C_DIR,))


def test_memory_forms_are_read_from_the_lowering() -> None:
    imported = DirectLowering({"heap": "$heap"}, ['(import "env" "heap" (memory $heap 0))'])
    assert imported.memory_form(["heap"]) == MemoryForm("import", "env", "heap")
    own = DirectLowering({"heap": "$m"}, ['(memory $m (export "mem") 3)'])
    assert own.memory_form(["heap"]) == MemoryForm("define", export="mem", pages=3)
    two = DirectLowering({"heap": "$heap", "scratch": "$p"},
                         ['(import "env" "heap" (memory $heap 0))',
                          '(memory $p (export "private") 1)'])
    assert two.memory_form(["heap"]) is None   # the plan expects its private memory too

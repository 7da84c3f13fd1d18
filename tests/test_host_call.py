"""host-call: counts against hand calculations, every workload verified, straddling pages,
window checks that trap."""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np
import pytest

from harness.cli.export import variant_specs
from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel, op
from harness.plugins.plan import Call, Count
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.worker.measure import MeasureSettings
from tests.kernelrun import run_verified

#: every mode x host; the python-hosted paged variant uses tiny pages and two slots, so
#: evictions, write-backs and page-straddling accesses happen in every workload
VARIANTS = ["host-call:mode=element", "host-call:mode=element,host=wasm",
            "host-call:mode=paged,page=64,slots=2", "host-call:mode=paged,host=wasm"]
#: workload families verified here (kws-dscnn, resnet8, transformer-block and their new
#: kernels landed at the deadline and are not yet checked under host-call)
CHECKED = {"gemm", "bias-relu", "add", "mul", "gemv", "softmax", "mlp", "mlp-digits",
           "autoencoder", "conv2d", "dwconv", "pool", "layernorm", "rmsnorm"}
#: element mode with a Python host pays µs per access: the fewest inferences that still check
#: the counts between two of them
FEW = MeasureSettings(warmup_s=0.0, warmup_runs=0, sample_s=0.0, samples=1)


def _cell(regs, w, s: str) -> Cell:
    wl = regs.workloads.create(w) if isinstance(w, str) else w
    return Cell(wl, regs.strategies.create(s), regs.runtimes.create("wasmtime"))


def mlp_element_calls(batch: int, sizes: list[int], isa: str = "simd") -> int:
    """Host calls of one inference in element mode (a v128 access is 4 calls of 4 bytes).

    scalar dense layer (GEMM m=batch, n=out, k=in, bias): per output one bias load, k loads
    of A, k of B and one store: m*n*(2k+2).
    simd (packed GEMM): B, bias and A are each read once into scratch panels, C written once;
    the microkernel then works in scratch only: k*n + n + m*k + m*n."""
    if isa == "scalar":
        return sum(batch * n * (2 * k + 2) for k, n in itertools.pairwise(sizes))
    return sum(k * n + n + batch * k + batch * n for k, n in itertools.pairwise(sizes))


def test_mlp_element_calls_equal_hand_calculation(regs) -> None:
    assert mlp_element_calls(64, [64, 32, 10], "scalar") == 64 * 32 * 130 + 64 * 10 * 66 == 308480
    assert mlp_element_calls(64, [64, 32, 10]) == (2048 + 32 + 4096 + 2048) + (320 + 10 + 2048 + 640)
    for isa in ("scalar", "simd"):
        w = regs.workloads.create(f"mlp:batch=64,sizes=64-32-10,isa={isa}")
        for host in ("python", "wasm"):
            plan = regs.strategies.create(f"host-call:mode=element,host={host}").plan(w)
            assert plan.expected_counts()["host_calls"] == mlp_element_calls(64, [64, 32, 10], isa)
            assert plan.expected_counts()["calls"] == (2 if host == "python" else 4)


def test_mlp_paged_fills_equal_hand_calculation(regs) -> None:
    """page=4096, 16 slots, tensors page-aligned, 13 heap pages: no conflict misses, so each
    dispatch fills every page it touches once and writes back the pages of its output.
    dense0: x 4 pages, w0 2, b0 1, h0 2 -> 9 fills, 2 flushes;
    dense1: h0 2, w1 1, b1 1, y 1 -> 5 fills, 1 flush."""
    w = regs.workloads.create("mlp:batch=64,sizes=64-32-10")
    plan = regs.strategies.create("host-call:mode=paged,page=4096,host=wasm").plan(w)
    counts = plan.expected_counts()
    assert (counts["page_fills"], counts["page_flushes"], counts["host_calls"]) == (14, 3, 17)
    # the shim's window settings and counter reads are visible plan steps
    assert [s.export for s in plan.run if isinstance(s, Call)] == \
        ["set_windows", "run", "set_windows", "run"]
    assert {s.counter for s in plan.run if isinstance(s, Count)} == \
        {"host_calls", "page_fills", "page_flushes"}


def test_issue_check_cells_ok_and_counted(regs, quick_settings) -> None:
    w = "mlp:batch=64,sizes=64-32-10"
    row = run_cell(_cell(regs, w, "host-call:mode=paged,page=4096,host=wasm"), "t",
                   quick_settings, 120)
    assert row.status == "ok", row.reason
    assert (row.counters["host_calls"], row.counters["page_fills"]) == (17, 14)
    row = run_cell(_cell(regs, w, "host-call:mode=element"), "t", FEW, 120)
    assert row.status == "ok", row.reason
    assert row.host_calls_per_run == mlp_element_calls(64, [64, 32, 10]) == 11242


@pytest.mark.parametrize("strategy", VARIANTS)
def test_every_workload_verifies(regs, strategy: str) -> None:
    """Every registered workload (each isa/choice variant, small shape), in process: outputs
    within tolerance of NumPy and exactly the host calls, fills and flushes the plan predicts
    (the worker path is covered by the cells above and below)."""
    backend = regs.runtimes.create("wasmtime").backend()
    # a C kernel (toolchain=clang) cannot make its accesses host calls: its refusal is
    # tests/test_clang_kernels.py's
    specs = [v for name, cls in regs.workloads if name in CHECKED
             for v in variant_specs(cls, small=True) if "toolchain=clang" not in v]
    assert len(specs) >= 10
    for spec in specs:
        lp, plan = run_verified(regs, spec, strategy, backend=backend)
        for key in ("host_calls", "page_fills", "page_flushes", "calls"):
            if key in plan.expected_counts():
                assert lp.counters[key] == plan.expected_counts()[key], (spec, key)
        assert lp.counters["host_calls"] > 0


class _StraddleKernel(Kernel):
    """y = x, copied with unaligned v128 accesses (elements 1..n-4) and f32 accesses at odd
    byte offsets (bytes 2..), so with small pages most accesses cross a page edge."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.name = f"straddle_{n}"
        self.buffers = (BufferParam("x", "r"), BufferParam("y", "rw"))
        self.features = frozenset({"simd128"})

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        x, y = bufs["x"], bufs["y"]
        i = fb.local("i", "i32")
        y.store(0, x.load(0))
        with fb.for_range(i, 1, self.n - 3, 4):
            y.store_at(y.addr(i), x.load_at(x.addr(i), "v128"), "v128")
        with fb.for_range(i, self.n - 3, self.n):
            y.store(i, x.load(i))
        # a byte-shifted round trip through y: f32 at byte offset 2 of each element pair
        with fb.for_range(i, 0, self.n - 1):
            y.store_at(y.ptr + i * 4 + 2, y.load_at(y.ptr + i * 4 + 2, "i32"), "i32")
        fb.set(i, op("i32.const", 0, ty="i32"))


class _StraddleWorkload(Workload):
    NAME = "straddle-test"

    def build_tensors(self) -> tuple[Tensor, ...]:
        return (Tensor("x", "input", (29,)), Tensor("y", "output", (29,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("straddle", _StraddleKernel(29), (("x", "x"), ("y", "y"))),)

    def reference(self, data):
        return {"y": data["x"].copy()}

    def tolerance(self) -> Tolerance:
        return Tolerance(0, 0)


@pytest.mark.parametrize("strategy", ["host-call:mode=paged,page=16,slots=2",
                                      "host-call:mode=paged,page=16,slots=1,host=wasm",
                                      "host-call:mode=element,host=wasm"])
def test_accesses_straddling_pages_are_correct(regs, quick_settings, strategy: str) -> None:
    row = run_cell(_cell(regs, _StraddleWorkload(), strategy), "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    if "element" in strategy:  # v128 = 4 calls: 1+1 + 7*(4+4) + 3*2 + 28*2
        assert row.host_calls_per_run == 2 + 7 * 8 + 6 + 28 * 2


class _OutOfBoundsKernel(Kernel):
    """Reads one element past the end of x (inside the heap, outside every window)."""

    name = "oob"
    buffers = (BufferParam("x", "r"), BufferParam("y", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        bufs["y"].store(0, bufs["x"].load(64 * 1024))


class _OobWorkload(_StraddleWorkload):
    NAME = "oob-test"

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("oob", _OutOfBoundsKernel(), (("x", "x"), ("y", "y"))),)


@pytest.mark.parametrize("strategy", ["host-call:mode=element", "host-call:mode=element,host=wasm",
                                      "host-call:mode=paged", "host-call:mode=paged,host=wasm"])
def test_access_outside_windows_traps(regs, quick_settings, strategy: str) -> None:
    row = run_cell(_cell(regs, _OobWorkload(), strategy), "t", quick_settings, 60)
    assert row.status == "trapped", row.reason
    if "wasm" not in strategy:
        assert "outside the dispatch's windows" in row.reason


def test_bad_page_size_is_a_spec_error(regs) -> None:
    from harness.core.errors import SpecError

    with pytest.raises(SpecError, match="power of two"):
        regs.strategies.create("host-call:mode=paged,page=100").plan(
            regs.workloads.create("bias-relu:n=4"))
    assert np.log2(4096) == 12

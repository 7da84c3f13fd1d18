"""End-to-end cells through real worker processes, and the ways a worker can fail."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import pytest

from harness.cell import Cell, run_cell
from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel
from harness.runtimes.base import Runtime
from harness.workload import Dispatch, Tensor, Tolerance, Workload


def _cell(regs, w: str, s: str, r: str = "wasmtime") -> Cell:
    return Cell(regs.workloads.create(w), regs.strategies.create(s), regs.runtimes.create(r))


@pytest.mark.parametrize("strategy", ["shared", "per-module"])
def test_odd_gemm_verifies(regs, quick_settings, strategy: str) -> None:
    row = run_cell(_cell(regs, "gemm:m=37,n=53,k=91", strategy), "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.max_abs_err is not None and row.max_abs_err < 91e-6
    assert len(row.samples_s) == 3 and row.median_s and row.median_s > 0
    assert row.phases["compile_s"] and row.phases["first_run_s"] > 0


def test_per_module_worker_copies_what_plan_says(regs, quick_settings) -> None:
    cell = _cell(regs, "mlp:batch=5,sizes=64-32-10", "per-module")
    plan = cell.strategy.plan(cell.workload)
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.bytes_copied_per_run == plan.bytes_copied_per_run() > 0
    assert row.counters["calls"] == 2
    assert row.counters["bytes_written"] == 5 * 64 * 4 and row.counters["bytes_read"] == 5 * 10 * 4


class _WrongKernel(Kernel):
    """Writes x + 1 where the reference says x: verification must catch it."""

    name = "wrong_copy"
    buffers = (BufferParam("x", "r"), BufferParam("y", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, 8):
            bufs["y"].store(i, bufs["x"].load(i) + 1.0)


class _TrapKernel(_WrongKernel):
    name = "trap"

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        fb.emit("(unreachable)")


class _CopyWorkload(Workload):
    NAME = "copy-test"
    kernel: Kernel = _WrongKernel()

    def build_tensors(self) -> tuple[Tensor, ...]:
        return (Tensor("x", "input", (8,)), Tensor("y", "output", (8,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("copy", self.kernel, (("x", "x"), ("y", "y"))),)

    def reference(self, data):
        return {"y": data["x"].copy()}

    def tolerance(self) -> Tolerance:
        return Tolerance(0, 1e-3)


class _TrapWorkload(_CopyWorkload):
    kernel = _TrapKernel()


def test_wrong_output_is_invalid_with_index(regs, quick_settings) -> None:
    cell = Cell(_CopyWorkload(), regs.strategies.create("shared"), regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "invalid"
    assert row.median_s is None and row.samples_s == ()
    assert row.max_abs_err == pytest.approx(1.0) and row.err_tensor == "y"
    assert len(row.err_index) == 1


def test_trap_is_trapped(regs, quick_settings) -> None:
    cell = Cell(_TrapWorkload(), regs.strategies.create("shared"), regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "trapped" and "unreachable" in row.reason


class _ScriptRuntime(Runtime):
    """A runtime whose 'worker' is a Python one-liner that misbehaves on purpose."""

    NAME = "script"

    def __init__(self, code: str) -> None:
        super().__init__()
        self.code = code

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-c", self.code]


@pytest.mark.parametrize("code, status, text", [
    ("import ctypes; ctypes.string_at(0)", "crashed", "SIGSEGV"),
    ("raise RuntimeError('boom in worker')", "crashed", "boom in worker"),
    ("import time; time.sleep(30)", "timeout", "no result after 1 s"),
    ("import sys; sys.exit(0)", "crashed", "no result"),
])
def test_worker_faults_become_statuses(regs, quick_settings, code, status, text) -> None:
    bad = Cell(regs.workloads.create("bias-relu:n=16"), regs.strategies.create("shared"),
               _ScriptRuntime(code))
    good = _cell(regs, "bias-relu:n=16", "shared")
    rows = [run_cell(c, "t", quick_settings, 1.0 if "sleep" in code else 30)
            for c in (bad, good)]
    assert rows[0].status == status and text in rows[0].reason
    assert rows[1].status == "ok"  # the suite goes on


def test_generated_data_is_deterministic(regs) -> None:
    w = regs.workloads.create("mlp:batch=3")
    a, b = w.generate(7), w.generate(7)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(w.generate(8)["x"], a["x"])


def test_slowdown_runtime_still_verifies_and_counts(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, "mlp:batch=2", "shared", "wasmtime:slowdown=20"), "t",
                   quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.counters["calls"] == 2

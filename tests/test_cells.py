"""End-to-end cells through real worker processes, and the ways a worker can fail."""

from __future__ import annotations

import sys
from collections.abc import Mapping

import numpy as np
import psutil
import pytest

from harness.codegen import Buffer, BufferParam, FunctionBuilder, Kernel
from harness.plugins.workload import Dispatch, Tensor, Tolerance, Workload
from harness.probes.probe import probe_runtime
from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.runtimes.base import Runtime


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
    ("import os; os.abort()", "crashed", "SIGABRT"),
    ("import sys; sys.stdout.write('x' * 10); sys.exit(3)", "crashed", "status 3"),
    # allocation past the worker's memory limit: a real MemoryError, contained
    ("x = bytearray(1 << 30)", "oom", "out of memory under the worker memory limit"),
])
def test_worker_faults_become_statuses(regs, quick_settings, code, status, text) -> None:
    bad = Cell(regs.workloads.create("bias-relu:n=16"), regs.strategies.create("shared"),
               _ScriptRuntime(code))
    good = _cell(regs, "bias-relu:n=16", "shared")
    row = run_cell(bad, "t", quick_settings, 1.0 if status == "timeout" else 30,
                   memory_limit=256 << 20)
    assert row.status == status and text in row.reason
    assert "\n" not in row.reason
    assert run_cell(good, "t", quick_settings, 60).status == "ok"  # the suite goes on


def test_timeout_kills_worker_and_its_children(regs, quick_settings, tmp_path) -> None:
    pidfile = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(60)']); "
            f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    cell = Cell(regs.workloads.create("bias-relu:n=16"), regs.strategies.create("shared"),
                _ScriptRuntime(code))
    row = run_cell(cell, "t", quick_settings, 1.5)
    assert row.status == "timeout" and "worker killed" in row.reason
    try:
        child = psutil.Process(int(pidfile.read_text()))
    except psutil.NoSuchProcess:
        return
    # SIGKILL went to the whole group; the child dies as soon as it is scheduled (at most
    # a zombie until init reaps it)
    _, alive = psutil.wait_procs([child], timeout=10)
    assert not alive or child.status() == psutil.STATUS_ZOMBIE


class _ArgvRuntime(Runtime):
    """A runtime whose worker command is given: for workers that cannot start."""

    NAME = "argv"

    def __init__(self, argv: list[str]) -> None:
        super().__init__()
        self.argv = argv

    def worker_argv(self) -> list[str]:
        return self.argv


@pytest.mark.parametrize("argv, text", [
    (["/nonexistent/bin/python3.10", "-m", "harness.worker"],
     "cannot start worker /nonexistent/bin/python3.10: No such file or directory"),
    # an interpreter without the harness and its packages (isolated, no site-packages)
    ([sys.executable, "-I", "-S", "-m", "harness.worker"], "No module named 'harness'"),
])
def test_runtime_that_cannot_start_is_unavailable(regs, quick_settings, argv, text) -> None:
    rt = _ArgvRuntime(argv)
    probe = probe_runtime(rt, timeout_s=30)
    assert probe.status == "unavailable" and text in probe.message
    cells = [Cell(regs.workloads.create(w), regs.strategies.create(s), rt)
             for w in ("bias-relu:n=16", "gemm:m=3,n=4,k=5") for s in ("shared", "per-module")]
    rows = [run_cell(c, "t", quick_settings, 30, probe) for c in cells]
    assert {r.status for r in rows} == {"unavailable"}
    assert {r.reason for r in rows} == {probe.message}  # one clear reason for all


class _TouchKernel(Kernel):
    """Copies x to y; also binds a big intermediate the strategy must place in memory."""

    name = "copy_touch"
    buffers = (BufferParam("x", "r"), BufferParam("big", "rw"), BufferParam("y", "w"))

    def emit(self, fb: FunctionBuilder, bufs: Mapping[str, Buffer]) -> None:
        i = fb.local("i", "i32")
        with fb.for_range(i, 0, 8):
            bufs["y"].store(i, bufs["x"].load(i))


class _BigWorkload(_CopyWorkload):
    """A plan whose linear memory needs 384 MiB (untouched, so cheap without a limit)."""

    NAME = "big-test"

    def build_tensors(self) -> tuple[Tensor, ...]:
        return (Tensor("x", "input", (8,)), Tensor("big", "intermediate", (96 << 20,)),
                Tensor("y", "output", (8,)))

    def build_dispatches(self) -> tuple[Dispatch, ...]:
        return (Dispatch("copy", _TouchKernel(), (("x", "x"), ("big", "big"), ("y", "y"))),)


def test_plan_over_worker_memory_limit_is_oom(regs, quick_settings) -> None:
    """The real wasmtime worker cannot commit a 384 MiB linear memory under a 256 MiB
    data limit: the cell is `oom`, the machine is untouched, and without the limit the
    same cell runs."""
    cell = Cell(_BigWorkload(), regs.strategies.create("shared"), regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 60, memory_limit=256 << 20)
    assert row.status == "oom", row.reason
    assert "256.0 MiB" in row.reason and "Cannot allocate memory" in row.reason
    assert run_cell(cell, "t", quick_settings, 60).status == "ok"


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

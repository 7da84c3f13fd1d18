"""Linked programs: a plan group as one WASI command that times itself, run by wasmtime
(`wasmtime:driver=linked`) and by current Wasmer's SDK (`wasmer-sdk`)."""

from __future__ import annotations

import pytest

from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.standalone.link import wasm_merge
from tests.test_cells import _CopyWorkload, _TrapWorkload

MERGE = wasm_merge()
pytestmark = pytest.mark.skipif(isinstance(MERGE, str), reason=str(MERGE))
LINKED = "wasmtime:driver=linked"


def _cell(regs, w, s: str, rt: str = LINKED) -> Cell:
    return Cell(regs.workloads.create(w) if isinstance(w, str) else w,
                regs.strategies.create(s), regs.runtimes.create(rt))


def _sdk(regs) -> str:
    reason = regs.runtimes.create("wasmer-sdk").unavailable_reason()
    if reason:
        pytest.skip(reason)
    return "wasmer-sdk"


@pytest.mark.parametrize("strategy", ["shared", "per-module", "per-module:resident=1",
                                      "multi-memory", "multi-memory:weights=separate",
                                      "per-device", "per-device:engine=shared",
                                      "host-call:mode=paged,host=wasm",
                                      "host-call:mode=element,host=wasm"])
def test_every_wasm_hosted_strategy_verifies_and_counts(regs, quick_settings,
                                                        strategy: str) -> None:
    cell = _cell(regs, "mlp:batch=5,sizes=64-32-10", strategy)
    plan = cell.strategy.plan(cell.workload)
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    assert row.bytes_copied_per_run == plan.bytes_copied_per_run()
    assert row.counters["calls"] == plan.calls_per_run()
    if "host-call" in strategy:  # counted by the shim, read by the driver's Count steps
        assert row.host_calls_per_run == plan.expected_counts()["host_calls"] > 0
    assert len(row.samples_s) == 3 and row.timing["passes"] == [0, 1, 2]
    assert row.runtime_info["config"]["driver"] == "linked"
    assert row.phases["compile_s"]["linked program"] > 0 and row.phases["link_s"] > 0


def test_an_embedding_host_is_unsupported_with_the_reason(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, "mlp:batch=5,sizes=64-32-10", "host-call:mode=paged"), "t",
                   quick_settings, 60)
    assert row.status == "unsupported" and "host=wasm" in row.reason


def test_a_wrong_output_is_invalid_and_a_trap_trapped(regs, quick_settings) -> None:
    wrong = run_cell(_cell(regs, _CopyWorkload(), "shared"), "t", quick_settings, 60)
    assert wrong.status == "invalid" and wrong.err_tensor == "y"
    trap = run_cell(_cell(regs, _TrapWorkload(), "shared"), "t", quick_settings, 60)
    assert trap.status == "trapped" and "unreachable" in trap.reason


@pytest.mark.parametrize("strategy", ["shared", "per-module", "multi-memory", "per-device",
                                      "host-call:mode=paged,host=wasm"])
def test_current_wasmer_runs_the_linked_program(regs, quick_settings, strategy: str) -> None:
    cell = _cell(regs, "mlp:batch=5,sizes=64-32-10", strategy, _sdk(regs))
    plan = cell.strategy.plan(cell.workload)
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    assert row.bytes_copied_per_run == plan.bytes_copied_per_run()
    assert row.counters["calls"] == plan.calls_per_run()
    assert row.runtime_info["version"].startswith("wasmer-sdk ")
    assert row.phases["compile_s"] == {}  # compiled inside the SDK's run: not apart
    assert "wasmer-wasix" in row.runtime_info["config"]["engine"]


def test_current_wasmer_reports_a_trap_and_refuses_the_python_host(regs, quick_settings) -> None:
    sdk = _sdk(regs)
    trap = run_cell(_cell(regs, _TrapWorkload(), "shared", sdk), "t", quick_settings, 60)
    assert trap.status == "trapped" and "unreachable" in trap.reason
    host = run_cell(_cell(regs, "mlp:batch=5,sizes=64-32-10", "host-call:mode=paged", sdk),
                    "t", quick_settings, 60)
    assert host.status == "unsupported" and "host=wasm" in host.reason

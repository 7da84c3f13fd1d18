"""Measurement features through real workers: breakdown pass, pinning, calibration cells."""

from __future__ import annotations

import dataclasses
import os

import pytest

from harness.run.calibration import baseline_cell, noop_cell, over_baseline
from harness.run.cell import run_cell
from harness.run.request import Cell


def test_breakdown_pass_times_each_step_kind(regs, quick_settings) -> None:
    cell = Cell(regs.workloads.create("mlp:batch=5,sizes=64-32-10"),
                regs.strategies.create("per-module"), regs.runtimes.create("wasmtime"))
    settings = dataclasses.replace(quick_settings, breakdown=True)
    row = run_cell(cell, "t", settings, 60, round_index=0)
    assert row.status == "ok", row.reason
    assert row.kind == "round" and row.round == 0
    b = row.breakdown
    assert b["runs"] >= 1 and b["copy_s"] > 0 and b["call_s"] > 0 and b["write_s"] > 0
    assert b["host_call_s"] == 0.0  # per-module makes no host calls
    assert b["copy_s"] + b["call_s"] + b["write_s"] + b["read_s"] <= b["total_s"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
def test_pin_sets_the_worker_affinity(regs, quick_settings) -> None:
    cpu = max(os.sched_getaffinity(0))
    row = run_cell(noop_cell(regs.runtimes.create("wasmtime")), "t", quick_settings, 60,
                   pin=(cpu,))
    assert row.status == "ok", row.reason
    assert row.timing["affinity"] == [cpu]
    assert row.counters["calls"] == 1 and row.samples_s


def test_baseline_worker_loads_nothing(regs, quick_settings) -> None:
    rt = regs.runtimes.create("wasmtime")
    base = run_cell(baseline_cell(rt), "t", quick_settings, 60)
    assert base.status == "ok", base.reason
    assert base.memory["linear_bytes"] == 0 and base.counters["calls"] == 0
    assert base.memory["peak_rss"] > 0
    diff = over_baseline({"peak_rss": base.memory["peak_rss"] + 4096}, base.memory)
    assert diff == {"peak_rss_over_baseline": 4096}


def test_cpu_clock_is_used_and_recorded(regs, quick_settings) -> None:
    settings = dataclasses.replace(quick_settings, clock="cpu")
    row = run_cell(noop_cell(regs.runtimes.create("wasmtime")), "t", settings, 60)
    assert row.status == "ok", row.reason
    assert row.timing["clock"] == "cpu" and all(x > 0 for x in row.samples_s)

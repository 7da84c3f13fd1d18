"""`--measure fuel`: wasm operators per inference, counted by wasmtime's fuel in a pass of
its own; deterministic, and absent with the reason where an engine does not count."""

from __future__ import annotations

import dataclasses

import pytest

from harness.cli import main as cli_main
from harness.run.cell import run_cell
from harness.run.request import Cell


def _fuel(regs, settings, workload: str, strategy: str = "shared",
          runtime: str = "wasmtime") -> dict:
    counted = dataclasses.replace(settings, measure=("time", "fuel"))
    row = run_cell(Cell(regs.workloads.create(workload), regs.strategies.create(strategy),
                        regs.runtimes.create(runtime)), "t", counted, 60)
    assert row.status == "ok", row.reason
    return row.metrics


def test_operator_counts_are_deterministic_and_follow_the_work(regs, quick_settings) -> None:
    small = _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8")["fuel"]
    assert isinstance(small, int) and small > 0
    assert _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8")["fuel"] == small  # A/A: identical
    assert _fuel(regs, quick_settings, "gemm:m=16,n=16,k=16")["fuel"] > 4 * small
    # the paged cache's inline tag checks are operators; per-module's copies are the host's
    shared = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10")["fuel"]
    paged = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10",
                  "host-call:mode=paged,host=wasm")["fuel"]
    copied = _fuel(regs, quick_settings, "mlp:batch=5,sizes=64-32-10", "per-module")["fuel"]
    assert paged > shared == copied


def test_an_engine_that_does_not_count_says_so(regs, quick_settings) -> None:
    got = _fuel(regs, quick_settings, "gemm:m=8,n=8,k=8", runtime="v8")
    assert got["fuel"] is None and "counts no executed operators" in got["fuel_reason"]


def test_an_unknown_measure_is_refused_with_the_known_ones(tmp_path, capsys) -> None:
    assert cli_main(["run", "--workload", "gemm:m=8,n=8,k=8", "--measure", "time,bogus",
                     "--out", str(tmp_path)]) == 2
    assert "time, fuel" in capsys.readouterr().err


def test_time_is_all_that_is_measured_unless_asked(regs, quick_settings) -> None:
    row = run_cell(Cell(regs.workloads.create("gemm:m=8,n=8,k=8"),
                        regs.strategies.create("shared"), regs.runtimes.create("wasmtime")),
                   "t", quick_settings, 60)
    assert "fuel" not in row.metrics and quick_settings.measure == ("time",)


@pytest.fixture
def counted_rows():
    from harness.store.rows import ResultRow

    def row(s: str, fuel: int, median: float) -> ResultRow:
        return ResultRow(run_id="r", workload="w", strategy=s, runtime="wasmtime",
                         status="ok", median_s=median, metrics={"fuel": fuel})
    return [row("shared", 1000, 1e-6), row("host-call:mode=paged,host=wasm", 1400, 3e-6)]


def test_the_report_puts_counts_beside_time(counted_rows) -> None:
    from reports.counts import operator_counts

    by = {c.strategy: c for c in operator_counts(counted_rows)}
    assert by["shared"].vs_baseline == 1.0 and by["shared"].ns_per_operator == pytest.approx(1.0)
    assert by["host-call:mode=paged,host=wasm"].vs_baseline == pytest.approx(1.4)

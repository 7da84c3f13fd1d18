"""Model pipelines: real data, verified outputs, model-level metrics."""

from __future__ import annotations

from harness.run.cell import run_cell
from harness.run.request import Cell


def test_mlp_digits_agrees_and_is_accurate(regs, quick_settings) -> None:
    cell = Cell(regs.workloads.create("mlp-digits"), regs.strategies.create("per-module"),
                regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    assert row.metrics["top1_agreement"] == 1.0
    assert row.metrics["test_accuracy"] >= 0.95


def test_mlp_digits_training_is_deterministic(regs) -> None:
    a = regs.workloads.create("mlp-digits").generate(0)
    b = regs.workloads.create("mlp-digits").generate(123)  # data seed does not apply: real data
    assert all((a[k] == b[k]).all() for k in a)


def test_autoencoder_shape_and_dispatches(regs) -> None:
    w = regs.workloads.create("autoencoder")
    assert len(w.dispatches) == 10
    assert w.tensor("x").shape == (1, 640) and w.tensor("y").shape == (1, 640)
    assert w.flops() == 2 * (640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128
                             + 128 * 640)


def test_autoencoder_runs_shared(regs, quick_settings) -> None:
    cell = Cell(regs.workloads.create("autoencoder:batch=2"), regs.strategies.create("shared"),
                regs.runtimes.create("wasmtime"))
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    assert row.counters["calls"] == 10


def test_summary_prints_model_metrics() -> None:
    import io

    from rich.console import Console

    from harness.cli.console import print_summary
    from harness.store.rows import ResultRow

    row = ResultRow(run_id="r", workload="mlp-digits", strategy="shared", runtime="wasmtime",
                    status="ok", samples_s=(1e-3, 1.1e-3), median_s=1e-3,
                    metrics={"top1_agreement": 1.0, "test_accuracy": 0.9778})
    buf = io.StringIO()
    print_summary([row], Console(file=buf, width=400))
    assert "top1 agreement 100.0%" in buf.getvalue() and "test accuracy 97.8%" in buf.getvalue()

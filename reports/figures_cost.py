"""Cost figures: bytes copied and host calls per inference, memory footprint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reports.data import MEMORY, RunData, memory
from reports.palette import Style
from reports.plotting import figure_height, fmt_bytes, fmt_count, grouped_hbars, pyplot, save


def _count(run: RunData, workload: str, strategy: str, field: str) -> float | None:
    """A per-inference count of (workload, strategy): from the plan, so the same on every
    runtime; taken from an ok cell when there is one, else from any cell that recorded it."""
    cells = [c for rt in run.runtimes if (c := run.cell(workload, strategy, rt)) is not None]
    for c in sorted(cells, key=lambda c: not c.ok):
        v = c.row.get(field)
        if isinstance(v, (int, float)):
            return float(v)
    return None


def copies_and_calls(run: RunData, styles: Mapping[str, Style], path: Path) -> Path:
    """Two panels, log scale: bytes copied per inference, host calls per inference."""
    plt = pyplot()
    ws, ss = run.workloads, run.strategies
    n_bars = len(ws) * len(ss)
    fig, axes = plt.subplots(1, 2, figsize=(13.0, figure_height(n_bars, base=1.6, per_bar=0.3)),
                             sharey=True)
    panels = (("bytes_copied_per_run", "bytes copied per inference", fmt_bytes, "bytes (log)", 4),
              ("host_calls_per_run", "host calls per inference", fmt_count, "calls (log)", 10))
    for ax, (field, title, fmt, xlabel, base) in zip(axes, panels, strict=True):
        series = [(s, [_count(run, w, s, field) for w in ws], styles[s]) for s in ss]
        grouped_hbars(ax, ws, series, fmt, log_base=base)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if not any(v for _, vals, _ in series for v in vals):
            ax.text(0.5, 0.5, "0 for every cell", transform=ax.transAxes, ha="center",
                    va="center", fontsize=11, color="#555555",
                    bbox={"facecolor": "white", "edgecolor": "#CCCCCC"})
    axes[0].set_ylabel("workload")
    _legend(fig, axes[-1], styles, ss)
    fig.suptitle("Per-inference data movement (from the plan, checked by the worker); "
                 "0 is drawn as '0', no data as '–'", fontsize=10)
    fig.tight_layout()
    return save(fig, path)


def footprint(run: RunData, runtime: str, styles: Mapping[str, Style], path: Path,
              peak_relative: bool) -> Path:
    """Three panels, log scale: peak RSS, committed linear memory, reserved virtual memory."""
    plt = pyplot()
    ws, ss = run.workloads, run.strategies
    n_bars = len(ws) * len(ss)
    fig, axes = plt.subplots(1, 3, figsize=(15.0, figure_height(n_bars, base=1.6, per_bar=0.3)),
                             sharey=True)
    titles = {"peak RSS": "peak RSS\nabove the empty worker's" if peak_relative
              else "peak RSS\nof the worker process",
              "committed linear memory": "committed linear memory\n(end of set-up)",
              "reserved virtual memory": "virtual memory reserved\n(incl. guard regions)"}
    for ax, name in zip(axes, MEMORY, strict=True):
        series = []
        for s in ss:
            vals: list[float | None] = []
            for w in ws:
                c = run.cell(w, s, runtime)
                vals.append(memory(c.row)[name] if c is not None and c.ok else None)
            series.append((s, vals, styles[s]))
        grouped_hbars(ax, ws, series, fmt_bytes, log_base=4)
        ax.set_title(titles[name])
        ax.set_xlabel("bytes (log)")
    axes[0].set_ylabel("workload")
    _legend(fig, axes[-1], styles, ss)
    fig.suptitle(f"Memory footprint on {runtime} (ok cells; '–' = not measured)", fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def _legend(fig: Any, ax: Any, styles: Mapping[str, Style], strategies: list[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=styles[s].colour, hatch=styles[s].hatch, edgecolor="#333333",
                     label=s) for s in strategies]
    ax.legend(handles=handles, title="strategy", loc="upper left", bbox_to_anchor=(1.01, 1.0),
              frameon=False)

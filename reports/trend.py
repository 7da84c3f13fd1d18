"""Trend plots for `membench history`: one PNG per (machine, cell)."""

from __future__ import annotations

import re
from pathlib import Path

from harness.analysis.history import CellHistory, StepChange


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:150]


def trend_plot(hist: CellHistory, steps: list[StepChange], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = list(range(len(hist.points)))
    ys = [p.median_s * 1e3 for p in hist.points]
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(xs, ys, marker="o", ms=3, lw=1, color="#1f77b4", label="median per run")
    for s in steps:
        ax.axvline(s.index - 0.5, color="#d62728", ls="--", lw=1)
        ax.annotate(f"+{(s.ratio - 1) * 100:.0f}%", (s.index, s.after_s * 1e3),
                    color="#d62728", fontsize=8)
    ax.set_xlabel("run (oldest → newest)")
    ax.set_ylabel("median time per inference (ms)")
    ax.set_title(f"{hist.cell}  [machine {hist.machine}]", fontsize=9)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)

"""Matplotlib plumbing shared by the report's figures: Agg backend, units, grouped bars."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from reports.palette import Style

DPI = 100
STYLE: dict[str, Any] = {"font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold",
         "axes.labelsize": 10, "legend.fontsize": 9, "xtick.labelsize": 9,
         "ytick.labelsize": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.grid": True, "grid.alpha": 0.3, "hatch.linewidth": 0.6}


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.style.use(STYLE)
    return plt


def save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return path


def time_unit(max_seconds: float) -> tuple[float, str]:
    """(scale, unit) so that max_seconds / scale is a readable number."""
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if max_seconds >= scale:
            return scale, unit
    return 1e-9, "ns"


def fmt_bytes(n: float) -> str:
    if n <= 0:
        return "0 B"
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            v = n / scale
            return f"{v:.0f} {unit}" if v >= 10 or v == int(v) else f"{v:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_count(n: float) -> str:
    if n <= 0:
        return "0"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def log_formatter(fmt: Callable[[float], str]) -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: fmt(x))


def grouped_hbars(ax: Any, categories: Sequence[str],
                  series: Sequence[tuple[str, Sequence[float | None], Style]],
                  fmt: Callable[[float], str], log: bool = True, log_base: int = 10) -> None:
    """Horizontal bars: one group per category (top to bottom), one bar per series.

    None means 'no value' (nothing drawn, an en dash written); 0 on a log axis is drawn as
    a '0' marker at the axis start, so a zero is visibly a zero rather than a gap.
    """
    n = max(1, len(series))
    height = 0.8 / n
    positives = [v for _, vals, _ in series for v in vals if v is not None and v > 0]
    lo = min(positives) / 3 if positives else 1.0
    hi = max(positives) * 3 if positives else 10.0
    for k, (label, vals, style) in enumerate(series):
        ys = [i + (k - (n - 1) / 2) * height for i in range(len(categories))]
        drawn = [(y, v) for y, v in zip(ys, vals, strict=True) if v is not None and v > 0]
        if drawn:
            ax.barh([y for y, _ in drawn], [v - (lo if log else 0) for _, v in drawn],
                    left=lo if log else 0, height=height * 0.92, color=style.colour,
                    hatch=style.hatch, edgecolor="#333333", linewidth=0.4, label=label)
        else:
            ax.barh([], [], color=style.colour, hatch=style.hatch, label=label)
        for y, v in zip(ys, vals, strict=True):
            if v is None:
                ax.text(lo, y, " –", va="center", fontsize=8, color="#777777")
            elif v <= 0:  # a zero: its strategy's colour, bold, at the axis start
                ax.text(lo, y, " 0", va="center", fontsize=9, color=style.colour,
                        fontweight="bold")
            else:
                ax.text(v, y, f" {fmt(v)}", va="center", fontsize=8)
    ax.set_yticks(range(len(categories)))
    ax.set_yticklabels(categories)
    ax.set_ylim(len(categories) - 0.5, -0.5)  # first category on top; zeros stay inside
    ax.grid(axis="y", visible=False)
    if log:
        from matplotlib.ticker import LogLocator, NullFormatter

        ax.set_xscale("log", base=log_base)
        ax.set_xlim(lo, hi * 4)  # room for the value labels
        ax.xaxis.set_major_locator(LogLocator(base=log_base, numticks=8))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_formatter(log_formatter(fmt))
    else:
        ax.set_xlim(0, hi * 1.25 / 3 if positives else 1)


def figure_height(n_bars: int, base: float = 1.4, per_bar: float = 0.28,
                  minimum: float = 2.6) -> float:
    return max(minimum, base + per_bar * n_bars)


def finite(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]

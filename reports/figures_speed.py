"""Speed figures: normalised heatmaps, per-workload time bars, start-up phase stacks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from reports.data import PHASES, RunData, phases
from reports.palette import PHASE_COLOURS, Style
from reports.plotting import figure_height, pyplot, save, time_unit
from reports.summary import Matrix

TICKS = ((1 / 8, "0.125×"), (1 / 4, "0.25×"), (1 / 2, "0.5×"), (2 / 3, "0.67×"), (0.8, "0.8×"),
         (1.0, "1×"), (1.25, "1.25×"), (1.5, "1.5×"), (2.0, "2×"), (4.0, "4×"), (8.0, "8×"))


def colour_span(mats: list[Matrix]) -> float:
    """One log2 colour range for every heatmap of a report, so equal colours mean equal
    ratios: the largest |log2 ratio| seen, at least 1.25× and at most 8×."""
    logs = [abs(math.log2(v)) for m in mats for v in m.values.flat if math.isfinite(v) and v > 0]
    return min(3.0, max([math.log2(1.25), *logs]))


def heatmap(mat: Matrix, path: Path, span: float) -> Path:
    """Strategy × runtime, time relative to the runtime's baseline; green faster, red slower."""
    plt = pyplot()
    from matplotlib.colors import TwoSlopeNorm

    ns, nr = len(mat.strategies), len(mat.runtimes)
    fig, ax = plt.subplots(figsize=(max(4.6, 2.6 + 1.4 * nr), max(2.4, 1.3 + 0.45 * ns)))
    logs = np.clip(np.log2(mat.values), -span, span)
    cmap = plt.get_cmap("RdYlGn_r").with_extremes(bad="#EEEEEE")
    img = ax.imshow(np.ma.masked_invalid(logs), cmap=cmap, aspect="auto",
                    norm=TwoSlopeNorm(vcenter=0.0, vmin=-span, vmax=span))
    for i, s in enumerate(mat.strategies):
        for j, rt in enumerate(mat.runtimes):
            v = mat.values[i, j]
            if math.isfinite(v):
                dark = abs(math.log2(v)) > 0.7 * span
                ax.text(j, i, f"{v:.2f}×", ha="center", va="center", fontsize=10,
                        color="white" if dark else "black", fontweight="bold")
            else:
                ax.text(j, i, mat.notes.get((s, rt), "no data"), ha="center", va="center",
                        fontsize=8, color="#555555")
    ax.set_xticks(range(nr))
    ax.set_xticklabels([f"{rt}\n(vs {mat.baselines[rt]})" if mat.baselines[rt] != "shared"
                        else rt for rt in mat.runtimes])
    ax.set_yticks(range(ns))
    ax.set_yticklabels(mat.strategies)
    ax.grid(False)
    ax.set_xlabel("runtime")
    ax.set_ylabel("strategy")
    ax.set_title(f"{mat.title}\ntime relative to shared, geometric mean")
    bar = fig.colorbar(img, ax=ax, fraction=0.05, pad=0.03)
    shown = [(math.log2(r), label) for r, label in TICKS if abs(math.log2(r)) <= span + 1e-9]
    bar.set_ticks([t for t, _ in shown])
    bar.set_ticklabels([label for _, label in shown])
    bar.set_label("time / shared time (lower is faster)")
    return save(fig, path)


def workload_bars(run: RunData, workload: str, styles: dict[str, Style], path: Path) -> Path:
    """Median steady-state time per strategy, grouped by runtime, with 95% bootstrap CIs."""
    plt = pyplot()
    runtimes, strategies = run.runtimes, run.strategies
    cells = {(s, rt): run.cell(workload, s, rt) for s in strategies for rt in runtimes}
    highs = [c.summary.ci_high for c in cells.values() if c is not None and c.summary]
    scale, unit = time_unit(max(highs) if highs else 1.0)
    n = len(strategies)
    width = 0.8 / max(1, n)
    fig, ax = plt.subplots(figsize=(max(4.2, 2.4 + 0.5 * n * len(runtimes)), 3.6))
    top = max(highs) / scale if highs else 1.0
    labelled: set[str] = set()
    for k, s in enumerate(strategies):
        st = styles[s]
        for j, rt in enumerate(runtimes):
            x = j + (k - (n - 1) / 2) * width
            c = cells[(s, rt)]
            if c is None:
                continue
            if c.ok and c.summary:
                m = c.summary.median / scale
                err = [[m - c.summary.ci_low / scale], [c.summary.ci_high / scale - m]]
                ax.bar(x, m, width * 0.9, color=st.colour, hatch=st.hatch, edgecolor="#333333",
                       linewidth=0.4, yerr=err, capsize=3, ecolor="#222222",
                       label=None if s in labelled else s)
                labelled.add(s)
                ax.text(x, c.summary.ci_high / scale + top * 0.02, f"{m:.3g}", ha="center",
                        va="bottom", fontsize=8)
            else:
                ax.text(x, top * 0.02, c.status, rotation=90, ha="center", va="bottom",
                        fontsize=8, color="#B00020")
    ax.set_xticks(range(len(runtimes)))
    ax.set_xticklabels(runtimes)
    ax.set_xlim(-0.6, len(runtimes) - 0.4)
    ax.set_ylim(0, top * 1.18)
    ax.grid(axis="x", visible=False)
    ax.set_xlabel("runtime")
    ax.set_ylabel(f"time per inference ({unit})")
    ax.set_title(f"{workload}\nsteady-state time per inference (median, 95% bootstrap CI)")
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, title="strategy", loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save(fig, path)


def phase_bars(run: RunData, workload: str, styles: dict[str, Style], path: Path,
               inferences: int) -> Path | None:
    """Stacked start-up phases plus `inferences` steady-state inferences, per ok cell."""
    plt = pyplot()
    rows = [c for rt in run.runtimes for s in run.strategies
            if (c := run.cell(workload, s, rt)) is not None and c.ok]
    if not rows:
        return None
    stacks = []
    for c in rows:
        ph = phases(c.row)
        parts = [ph[p] or 0.0 for p in PHASES] + [c.median * inferences]
        stacks.append(parts)
    total = max(sum(p) for p in stacks)
    scale, unit = time_unit(total)
    labels = [f"{c.strategy} · {c.runtime}" if len(run.runtimes) > 1 else c.strategy
              for c in rows]
    fig, ax = plt.subplots(figsize=(6.0, figure_height(len(rows), base=1.8, per_bar=0.42)))
    left = np.zeros(len(rows))
    names = [*PHASES, "steady state"]
    for k, name in enumerate(names):
        widths = np.array([p[k] for p in stacks]) / scale
        legend = f"steady state × {inferences}" if name == "steady state" else name
        colour, hatch = PHASE_COLOURS[name]
        ax.barh(range(len(rows)), widths, left=left, color=colour, hatch=hatch,
                edgecolor="#555555", linewidth=0.4, label=legend, height=0.62)
        left += widths
    for i, total_i in enumerate(left):
        ax.text(total_i, i, f" {total_i:.3g} {unit}", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels)
    for tick, c in zip(ax.get_yticklabels(), rows, strict=True):
        tick.set_color(styles[c.strategy].colour)
        tick.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.2)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"cumulative time ({unit})")
    ax.set_title(f"{workload}\nstart-up phases, then {inferences} steady-state inferences")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="phase")
    return save(fig, path)

"""`write_report`: the one entry point the harness calls to report on a run directory.

Writes, into the run directory (or `out_dir`): `report.html`, `figures/*.png` (linked
relatively), `results.csv` (one row per cell) and `samples.csv` (one row per sample).
Works on partial runs: whatever rows exist are reported, and what is missing is said.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ResultsError
from harness.core.protocol import write_text_atomic
from harness.store.manifest import MANIFEST
from harness.store.rows import OVERHEAD_FACTOR, RESULTS
from reports import (
    answer,
    concurrency,
    counts,
    embedding,
    figures_cost,
    figures_speed,
    forms,
    growth,
    html,
    summary,
    tables,
    toolchain,
    weights,
)
from reports.data import (
    PHASES,
    RunData,
    completeness,
    has_run_files,
    load_run,
    peak_is_relative,
    phases,
    write_csvs,
)
from reports.palette import strategy_styles

FIGURES = "figures"
INFERENCES = 100  # the phase chart's steady-state part: this many inferences


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    csv: Path
    images: tuple[Path, ...]


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:120] or "x"


def write_report(run_dir: Path, out_dir: Path | None = None) -> ReportFiles:
    """Render the report of `run_dir`; raise ResultsError if it is not a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not has_run_files(run_dir):
        raise ResultsError(f"{run_dir} is not a run directory (no results.jsonl or run.json)")
    out = Path(out_dir) if out_dir else run_dir
    fig_dir = out / FIGURES
    fig_dir.mkdir(parents=True, exist_ok=True)
    for old in fig_dir.glob("*.png"):  # figures of an earlier render of this run
        old.unlink()
    run = load_run(run_dir)
    csvs = write_csvs(run, out)
    context, images = _context(run, fig_dir)
    rel = Path(os.path.relpath(run_dir, out))
    context["files"] = {"csv": csvs["results"].name, "samples": csvs["samples"].name,
                        "jsonl": (rel / RESULTS).as_posix(), "manifest": (rel / MANIFEST).as_posix()}
    page = out / "report.html"
    write_text_atomic(page, html.render(context))
    return ReportFiles(page, csvs["results"], tuple(images))


def _dominated(row: Any, ratio: float | None) -> bool:
    """The run's own flag when it set one, else: under 10× the runtime's noop time."""
    flag = row.get("overhead_dominated")
    if isinstance(flag, bool):
        return flag
    return ratio is not None and ratio < OVERHEAD_FACTOR


def _rel(path: Path | None, fig_dir: Path) -> str | None:
    return f"{FIGURES}/{path.name}" if path is not None else None


def _context(run: RunData, fig_dir: Path) -> tuple[dict[str, Any], list[Path]]:
    images: list[Path] = []

    def keep(path: Path | None) -> str | None:
        if path is not None:
            images.append(path)
        return _rel(path, fig_dir)

    styles = strategy_styles(run.strategies)
    has_ok = any(c.ok for c in run.bench_cells)
    heatmaps = []
    if has_ok:
        mats = summary.heatmap_matrices(run)
        span = figures_speed.colour_span(mats)
        for i, mat in enumerate(mats):
            name = "all" if i == 0 else slug(mat.title.split()[1])
            heatmaps.append({"title": mat.title, "png": keep(figures_speed.heatmap(
                mat, fig_dir / f"heatmap-{i:02d}-{name}.png", span))})
    ratios = tables.overhead_ratios(run)
    workloads = []
    for i, w in enumerate(run.workloads):
        stem = f"workload-{i:02d}-{slug(w)}"
        cells = [c for rt in run.runtimes for s in run.strategies
                 if (c := run.cell(w, s, rt)) is not None]
        any_ok = any(c.ok for c in cells)
        workloads.append({
            "name": w, "anchor": stem, "cells": cells, "noop_ratio": ratios,
            "phases_of": {c.key: phases(c.row) for c in cells},
            "dominated": {c.key for c in cells if c.ok and _dominated(c.row, ratios.get(c.key))},
            "bars": keep(figures_speed.workload_bars(run, w, styles, fig_dir / f"{stem}.png"))
            if any_ok else None,
            "phases": keep(figures_speed.phase_bars(run, w, styles,
                                                    fig_dir / f"{stem}-phases.png", INFERENCES)),
        })
    copies = keep(figures_cost.copies_and_calls(run, styles, fig_dir / "copies-calls.png")) \
        if run.workloads else None
    footprints = []
    for rt in run.runtimes:
        if any(c.ok and c.runtime == rt for c in run.bench_cells):
            footprints.append({"runtime": rt, "png": keep(figures_cost.footprint(
                run, rt, styles, fig_dir / f"memory-{slug(rt)}.png", peak_is_relative(run)))})
    ans = answer.answer(run)
    typed = answer.result_rows(run)
    loads = weights.weight_loads(typed)
    load_figures = [{"runtime": rt, "png": keep(weights.figure(
        loads, rt, fig_dir / f"weights-{slug(rt)}.png"))}
        for rt in dict.fromkeys(w.runtime for w in loads)]
    grown = growth.growths(typed)
    growth_figures = [{"workload": w, "png": keep(growth.figure(
        grown, w, fig_dir / f"growth-{slug(w)}.png"))}
        for w in dict.fromkeys(g.workload for g in grown)]
    scaled = concurrency.scalings(typed)
    scaling_figures = [{"workload": w, "runtime": rt, "png": keep(concurrency.figure(
        scaled, w, rt, fig_dir / f"scaling-{slug(w)}-{slug(rt)}.png"))}
        for w, rt in dict.fromkeys((x.workload, x.runtime) for x in scaled if x.agents)]
    context = {
        "run_id": run.run_id, "manifest": run.manifest, "done": completeness(run),
        "runtimes": run.runtimes, "strategies": run.strategies, "n_rows": len(run.rows),
        "colours": {s: st.colour for s, st in styles.items()},
        "answer": ans, "ratios": answer.per_workload(ans) if ans else [],
        "isolation": tables.isolation_grid(run),
        "heatmaps": heatmaps, "workloads": workloads, "copies": copies,
        "footprints": footprints, "peak_relative": peak_is_relative(run),
        "capabilities": tables.capability_grid(run), "support": tables.support_grid(run),
        "problems": tables.problems(run), "environment": tables.environment(run),
        "overhead": tables.embedding_overhead(run), "inferences": INFERENCES,
        "host_call_costs": embedding.host_call_costs(ans.ratios, typed) if ans else [],
        "dispatch_shares": embedding.dispatch_shares(typed, tables.noop_medians(run.rows)),
        "embedded_vs_linked": embedding.embedded_vs_linked(typed),
        "toolchains": toolchain.toolchain_pairs(typed),
        "forms": forms.form_pairs(typed),
        "weight_loads": loads, "weight_figures": load_figures,
        "growths": grown, "growth_figures": growth_figures,
        "scalings": scaled if scaling_figures else [], "scaling_figures": scaling_figures,
        "races": concurrency.races(run.rows_of_kind("race")),
        "without_agents": concurrency.without_agents(typed),
        "too_many_agents": concurrency.too_many(typed),
        "cell_counts": (cc := counts.cell_counts(typed)),
        "count_fits": counts.count_fits(cc),
        "noise": tables.noise_notes(run), "phase_names": PHASES,
    }
    return context, images

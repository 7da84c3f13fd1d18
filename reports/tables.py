"""The report's non-speed tables: capabilities, support, isolation, problems, environment.

Isolation rows. The report reads rows of kind `isolation`, one per (probe, strategy,
runtime), in this shape (fields other than these are ignored):

    {"kind": "isolation", "strategy": "shared", "runtime": "wasmtime",
     "workload": "read-unbound",            # the probe's name (or "probe": ...)
     "status": "ok",                        # the probe ran; else why not (unsupported, ...)
     "outcome": "leaked",                   # trapped | leaked | corrupted | contained
     "reason": "read 64 bytes of tensor w1"}

`outcome` may also sit in `metrics`. A row without an outcome shows its status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.core.fmt import fmt_time
from harness.store.manifest import CAPABILITIES
from reports.data import Key, RunData
from reports.palette import strategy_order
from reports.plotting import fmt_bytes

ISOLATION_KIND = "isolation"
OUTCOMES = ("trapped", "contained", "blocked", "isolated", "leaked", "corrupted")
SEVERITY = ("invalid", "crashed", "trapped", "timeout", "oom", "unavailable", "unsupported",
            "skipped")


@dataclass(frozen=True)
class Mark:
    """A table cell: short text, a CSS class, and the full reason behind it."""

    text: str
    css: str = ""
    detail: str = ""


@dataclass(frozen=True)
class Grid:
    """A labelled matrix of marks; `columns` may be grouped under `groups` (label, span)."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], Mark]
    groups: list[tuple[str, int]] = field(default_factory=list)
    row_notes: dict[str, str] = field(default_factory=dict)

    def get(self, row: str, col: str) -> Mark:
        return self.cells.get((row, col), Mark("–", "na"))


def capability_grid(run: RunData) -> Grid:
    """Runtime × capability, as probed at the start of the run (run.json "runtimes")."""
    probes: Mapping[str, Any] = run.manifest.get("runtimes") or {}
    caps = list(CAPABILITIES)
    for p in probes.values():
        caps += [c for c in (p.get("capabilities") or {}) if c not in caps]
    cells: dict[tuple[str, str], Mark] = {}
    notes: dict[str, str] = {}
    for rt, p in probes.items():
        version = p.get("version") or (p.get("info") or {}).get("version") or ""
        notes[rt] = f"{version}" if p.get("status", "ok") == "ok" else \
            f"{p.get('status')}: {p.get('message', '')}"
        for c in caps:
            got = (p.get("capabilities") or {}).get(c)
            if got is None:
                cells[(rt, c)] = Mark("?", "na", "not probed")
            elif got.get("ok"):
                cells[(rt, c)] = Mark("✓", "yes", str(got.get("detail") or ""))
            else:
                cells[(rt, c)] = Mark("✗", "no", str(got.get("detail") or "absent"))
    return Grid(list(probes), caps, cells, row_notes=notes)


def support_grid(run: RunData) -> Grid:
    """Strategy × runtime: how many workloads ran ok, and why the others did not."""
    cells: dict[tuple[str, str], Mark] = {}
    for s in run.strategies:
        for rt in run.runtimes:
            mine = [c for c in run.bench_cells if c.strategy == s and c.runtime == rt]
            if not mine:
                continue
            ok = sum(c.ok for c in mine)
            bad = [c for c in mine if not c.ok]
            statuses = sorted({c.status for c in bad}, key=_severity)
            reasons = sorted({f"{c.status}: {c.reason}" if c.reason else c.status for c in bad})
            if not bad:
                mark = Mark(f"ok {ok}/{len(mine)}", "yes")
            else:
                css = "no" if statuses[0] in SEVERITY[:5] else "partial" if ok else "unsup"
                label = "ok" if ok else statuses[0]
                mark = Mark(f"{label} {ok}/{len(mine)}" if ok else f"{label}", css,
                            "\n".join(reasons))
            cells[(s, rt)] = mark
    return Grid(run.strategies, run.runtimes, cells)


def _severity(status: str) -> int:
    return SEVERITY.index(status) if status in SEVERITY else len(SEVERITY)


def _outcome(row: Mapping[str, Any]) -> str | None:
    for src in (row, row.get("metrics") or {}):
        for k in ("outcome", "isolation", "verdict"):
            v = src.get(k)
            if isinstance(v, str) and v:
                return v
    return None


def isolation_grid(run: RunData) -> Grid | None:
    """Strategy × (runtime, probe) outcomes; None when the run has no isolation rows."""
    rows = run.rows_of_kind(ISOLATION_KIND)
    if not rows:
        return None
    runtimes = list(dict.fromkeys(str(r.get("runtime", "?")) for r in rows))
    probes = list(dict.fromkeys(str(r.get("probe") or (r.get("metrics") or {}).get("probe")
                                    or r.get("workload", "?")) for r in rows))
    strategies = strategy_order(str(r.get("strategy", "?")) for r in rows)
    cells: dict[tuple[str, str], Mark] = {}
    for r in rows:
        probe = str(r.get("probe") or (r.get("metrics") or {}).get("probe")
                    or r.get("workload", "?"))
        col = f"{r.get('runtime', '?')} / {probe}"
        outcome = _outcome(r)
        status = str(r.get("status", "?"))
        text = outcome or status
        css = f"iso-{text}" if text in OUTCOMES else "na"
        cells[(str(r.get("strategy", "?")), col)] = Mark(text, css, str(r.get("reason") or ""))
    columns = [f"{rt} / {p}" for rt in runtimes for p in probes]
    groups = [(rt, len(probes)) for rt in runtimes]
    return Grid(strategies, columns, cells, groups)


@dataclass(frozen=True)
class Problem:
    kind: str
    workload: str
    strategy: str
    runtime: str
    status: str
    reason: str


def problems(run: RunData) -> list[Problem]:
    """Every row that is not `ok`, worst first. A failed round is listed only when its cell
    has no final row (the final row repeats its reason). Isolation rows that carry an
    outcome are results, not problems (a trap is what a probe hopes for)."""
    finals = {(r.get("workload"), r.get("strategy"), r.get("runtime")) for r in run.rows
              if r.get("kind", "cell") == "cell"}
    out = []
    for r in run.rows:
        status = str(r.get("status", "unknown"))
        kind = str(r.get("kind", "cell"))
        if status == "ok" or (kind == ISOLATION_KIND and (_outcome(r) or status in OUTCOMES)):
            continue
        if kind == "round" and (r.get("workload"), r.get("strategy"), r.get("runtime")) in finals:
            continue
        out.append(Problem(kind, str(r.get("workload", "?")), str(r.get("strategy", "?")),
                           str(r.get("runtime", "?")), status,
                           str(r.get("reason") or "(no message recorded)")))
    return sorted(out, key=lambda p: _severity(p.status))


def missing_cells(keys: tuple[Key, ...]) -> list[str]:
    return [" | ".join(k) for k in keys]


# -- embedding overhead ----------------------------------------------------------------------

OVERHEAD_KEYS = ("embedding", "embedding_overhead", "overhead")


def _fmt_value(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if name.endswith("_ns"):
        return fmt_time(value / 1e9)
    if name.endswith("_s") or name.endswith("_seconds"):
        return fmt_time(float(value))
    if "rss" in name or "vms" in name or name.endswith("bytes"):
        return fmt_bytes(float(value))
    return f"{value:.4g}"


def _flatten(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, Mapping):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    return [(prefix, value)]


def embedding_overhead(run: RunData) -> list[tuple[str, str, str, str]]:
    """(runtime, measurement, value, source) for every embedding-cost figure the run has:
    figures in run.json's runtime entries, the `noop` calibration cell (one empty wasm
    call per inference) and the `baseline` empty worker's memory."""
    out: list[tuple[str, str, str, str]] = []
    for rt, p in (run.manifest.get("runtimes") or {}).items():
        for key in OVERHEAD_KEYS:
            if p.get(key) is not None:
                for name, v in _flatten("", p[key]):
                    out.append((rt, name or key, _fmt_value(name, v), "run.json"))
    noop_runtimes = set()
    for r in run.rows:
        kind, rt = r.get("kind", "cell"), str(r.get("runtime", "?"))
        if kind == "noop":
            noop_runtimes.add(rt)
            what = "empty wasm call from the embedding (noop cell, median per inference)"
            if r.get("status") == "ok" and r.get("median_s") is not None:
                out.append((rt, what, fmt_time(float(r["median_s"])), "noop row"))
            else:
                out.append((rt, what, str(r.get("status")), str(r.get("reason") or "")))
        elif kind == "baseline":
            mem = r.get("memory") or {}
            for k in ("peak_rss", "rss_after_load", "vms_after_load"):
                if isinstance(mem.get(k), (int, float)):
                    out.append((rt, f"empty worker: {k.replace('_', ' ')}",
                                fmt_bytes(float(mem[k])), "baseline row"))
            if r.get("status") != "ok":
                out.append((rt, "empty worker", str(r.get("status")), str(r.get("reason"))))
    for c in run.overhead_cells:
        if c.runtime not in noop_runtimes:
            text = fmt_time(c.median) if c.ok else f"{c.status}: {c.reason}"
            out.append((c.runtime, f"{c.workload} cell, {c.strategy} (median per inference)",
                        text, "cell"))
    return out


def noop_medians(rows: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """Each runtime's empty wasm call from the embedding (the `noop` calibration row)."""
    out = {}
    for r in rows:
        median = r.get("median_s")
        if r.get("kind") == "noop" and r.get("status") == "ok" and median \
                and isinstance(median, (int, float)):
            out[str(r.get("runtime"))] = float(median)
    return out


def overhead_ratios(run: RunData) -> dict[Key, float]:
    """Cell median / its runtime's noop median (the row's `overhead_s`, else the noop row)."""
    noop = noop_medians(run.rows)
    for c in run.overhead_cells:
        if c.ok and c.runtime not in noop:
            noop[c.runtime] = c.median
    out = {}
    for c in run.bench_cells:
        floor = c.row.get("overhead_s") or noop.get(c.runtime)
        if c.ok and isinstance(floor, (int, float)) and floor > 0:
            out[c.key] = c.median / floor
    return out


NOISY_CV = 0.10


def noise_notes(run: RunData) -> list[str]:
    """Warnings a reader needs before trusting small differences."""
    notes = []
    cvs = [c.summary.cv for c in run.bench_cells if c.ok and c.summary and c.summary.n > 1]
    noisy = [cv for cv in cvs if cv > NOISY_CV]
    if noisy:
        cvs.sort()
        notes.append(f"{len(noisy)} of {len(cvs)} timed cells have a coefficient of variation "
                     f"above {NOISY_CV:.0%} (median CV {cvs[len(cvs) // 2]:.1%}): differences "
                     "smaller than the CIs shown are noise.")
    recorded = run.manifest.get("warnings")
    if isinstance(recorded, list):  # the run's own noise warnings, made when it started
        return notes + [f"At the start of the run: {w}." for w in recorded]
    fp = run.manifest.get("fingerprint") or {}
    load, cpus = fp.get("loadavg_1m"), fp.get("cpu_count")
    if isinstance(load, (int, float)) and isinstance(cpus, int) and cpus and load > 0.5 * cpus:
        notes.append(f"The machine was busy when the run started (1-minute load average "
                     f"{load:g} on {cpus} CPUs).")
    return notes


# -- environment -----------------------------------------------------------------------------

def _fmt_fingerprint(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if key == "mem_total" and isinstance(value, (int, float)):
        return fmt_bytes(float(value))
    if isinstance(value, list) and all(isinstance(p, Mapping) for p in value):
        if key == "busy_processes":
            return "; ".join(f"{p.get('name')} (pid {p.get('pid')}) {p.get('cpu_percent', 0):.0f}% CPU"
                             for p in value) or "none"
        return "; ".join(", ".join(f"{k}={v}" for k, v in p.items()) for p in value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def environment(run: RunData) -> list[tuple[str, str]]:
    m = run.manifest
    items: list[tuple[str, str]] = []
    for key in ("run_id", "created", "suite", "status", "cells_planned", "cells_done",
                "cell_timeout"):
        if m.get(key) is not None:
            items.append((key, str(m[key])))
    if m.get("command"):
        items.append(("command", " ".join(str(a) for a in m["command"])))
    for k, v in _flatten("", m.get("fingerprint") or {}):
        items.append((k, _fmt_fingerprint(k, v)))
    for k, v in _flatten("settings", m.get("settings") or {}):
        items.append((k, str(v)))
    for rt, p in (m.get("runtimes") or {}).items():
        info = p.get("info") or {}
        desc = ", ".join(f"{k}={v}" for k, v in (info.get("config") or {}).items())
        items.append((f"runtime {rt}", f"{p.get('version') or info.get('version') or '?'}"
                      + (f" ({desc})" if desc else "")))
    return items

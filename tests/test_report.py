"""The HTML report, its figures and CSVs, from synthetic run directories."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.cli import main
from reports.answer import answer, per_workload
from reports.build import write_report
from reports.data import load_run
from reports.palette import base_colour, strategy_styles
from reports.tables import support_grid

pytest.importorskip("matplotlib")

RNG = np.random.default_rng(1)


def _samples(median: float, n: int = 9) -> list[float]:
    return list(median * (1 + 0.01 * RNG.standard_normal(n)))


def _row(w: str, s: str, rt: str, status: str = "ok", median: float = 1e-3,
         **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": "r1", "workload": w, "strategy": s, "runtime": rt,
                           "status": status, "reason": "", "kind": "cell", "flops": 1000}
    if status == "ok":
        row.update({"samples_s": _samples(median), "median_s": median,
                    "phases": {"compile_s": {"a": 0.01, "b": 0.02}, "instantiate_s": {"a": 1e-4},
                               "setup_s": 2e-4, "first_run_s": 3 * median},
                    "memory": {"baseline_rss": 40 << 20, "peak_rss": 52 << 20,
                               "linear_bytes": 65536, "vms_reserved": 4 << 30},
                    "bytes_copied_per_run": 0 if s == "shared" else 40604,
                    "host_calls_per_run": 0, "calls_per_run": 1,
                    "a_field_from_the_future": {"x": 1}})
    row.update(extra)
    return row


def make_run(root: Path, rows: list[dict[str, Any]], **manifest: Any) -> Path:
    d = root / "run"
    d.mkdir(parents=True)
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = {"run_id": "r1", "suite": "quick", "status": "complete", "cells_planned": len(rows),
         "fingerprint": {"cpu_model": "Test CPU", "cpu_count": 2, "loadavg_1m": 0.1,
                         "git": {"commit": "abc", "dirty": False}},
         "runtimes": {"wasmtime": {"status": "ok", "version": "50.0.1", "capabilities": {
             "multi-memory": {"ok": True, "detail": ""},
             "shared-memory": {"ok": False, "detail": "TypeError: no <shared> today"}}}}}
    m.update(manifest)
    (d / "run.json").write_text(json.dumps(m))
    return d


ROWS = [
    _row("gemm:m=8", "shared", "wasmtime", median=1e-3),
    _row("gemm:m=8", "per-module", "wasmtime", median=2e-3),
    _row("gemm:m=8", "multi-memory", "wasmtime", status="unsupported",
         reason="wasm3 lacks multi-memory: <b>not</b> here"),
    _row("gemm:m=8", "shared", "wasm3", median=4e-3),
    _row("gemm:m=8", "per-module", "wasm3", status="crashed",
         reason="<script>alert('x')</script> worker died"),
    _row("mlp", "shared", "wasmtime", median=5e-4),
    _row("mlp", "per-module", "wasmtime", median=4e-4),
    _row("mlp", "shared", "wasm3", median=3e-3),
    _row("mlp", "per-module", "wasm3", median=3.3e-3),
    _row("noop", "noop:mode=call", "wasm3", median=2e-6),  # an old-style noop cell
    {"kind": "noop", "workload": "noop", "strategy": "noop:mode=call", "runtime": "wasmtime",
     "status": "ok", "median_s": 2e-6},
    _row("noop", "noop:mode=call", "wasmtime", median=2e-6, kind="round", round=0),
    {"kind": "baseline", "workload": "noop", "strategy": "noop:mode=empty",
     "runtime": "wasmtime", "status": "ok", "memory": {"peak_rss": 40 << 20}},
    _row("mlp", "per-module", "wasmtime", median=4e-4, kind="round", round=0),
    {"kind": "isolation", "workload": "read-unbound", "strategy": "shared",
     "runtime": "wasmtime", "status": "ok", "outcome": "leaked", "reason": "read w1"},
    {"kind": "isolation", "workload": "read-unbound", "strategy": "per-module",
     "runtime": "wasmtime", "status": "ok", "metrics": {"outcome": "trapped"}},
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = make_run(tmp_path_factory.mktemp("rep"), ROWS)
    files = write_report(d)
    return d, files.html.read_text()


def test_every_image_is_a_png_beside_the_report(report: tuple[Path, str]) -> None:
    d, page = report
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert len(srcs) >= 7  # 3 heatmaps, 2 workloads × 2, copies, 2 footprints
    for src in srcs:
        assert not src.startswith(("/", "http")), src  # relative links only
        assert (d / src).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_reasons_are_escaped_and_every_failure_listed(report: tuple[Path, str]) -> None:
    _, page = report
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; worker died" in page
    assert "lacks multi-memory: &lt;b&gt;not&lt;/b&gt; here" in page
    problems = page.split('id="problems"')[1].split("</section>")[0]
    assert "crashed" in problems and "unsupported" in problems
    assert "Problems: every cell that is not ok (2)" in page


def test_answer_matrix_and_ratios_per_workload(report: tuple[Path, str]) -> None:
    d, page = report
    run = load_run(d)
    ans = answer(run)
    assert ans is not None and ans.runtimes == ["wasmtime", "wasm3"]
    assert ans.strategies == ["shared", "per-module", "multi-memory"]
    # per-module on wasmtime: 2.0x on gemm, 0.8x on mlp -> sqrt(1.6); these synthetic rows
    # were not measured in one group, so the ratios are unpaired and say so
    pm = ans.get("per-module", "wasmtime")
    assert pm.head.startswith("+26%") and pm.head.endswith("unpaired") and pm.css == "v-slower"
    assert not ans.paired and ans.get("shared", "wasmtime").head == "1 (baseline)"
    assert ans.get("multi-memory", "wasmtime").head == "unsupported"
    assert "1 crashed" in ans.get("per-module", "wasm3").detail  # its gemm cell crashed
    assert ans.isolation["shared"] == "? (probed: leaked)"
    assert ans.sentences[0].startswith("wasmtime: fastest: shared (the baseline)")
    rows = {w.workload: w for w in per_workload(ans)}
    assert list(rows) == ["gemm:m=8", "mlp"]  # the noop cell is not a workload
    assert rows["gemm:m=8"].per_runtime["wasmtime"][0].ratio == pytest.approx(2.0, rel=0.05)
    assert page.count('class="workload-row"') == 2 and 'id="answer-matrix"' in page
    assert run.cell("mlp", "per-module", "wasmtime").summary.n == 9  # its round row not added

def test_isolation_embedding_and_capabilities_shown(report: tuple[Path, str]) -> None:
    _, page = report
    iso = page.split('id="isolation"')[1].split("</table>")[0]
    assert 'class="iso-leaked" title="read w1">leaked' in iso
    assert ">trapped<" in iso and "read-unbound" in iso
    assert "empty wasm call from the embedding (noop cell, median per inference)" in page
    assert "2 µs" in page and "empty worker: peak rss" in page and "40 MiB" in page
    assert "noop cell, noop:mode=call (median per inference)" in page  # wasm3, no noop row
    assert "TypeError: no &lt;shared&gt; today" in page
    grid = support_grid(load_run(report[0]))
    assert grid.get("per-module", "wasm3").css == "no"           # crashed: a failure
    assert grid.get("multi-memory", "wasmtime").css == "unsup"   # unsupported: a gap
    assert "not</b> here" in grid.get("multi-memory", "wasmtime").detail
    assert grid.get("shared", "wasm3").text == "ok 2/2"


def test_results_csv_is_tidy(report: tuple[Path, str]) -> None:
    import pandas as pd

    d, _ = report
    df = pd.read_csv(d / "results.csv")
    assert len(df) == 10  # cells only: isolation, calibration and round rows are not cells
    assert {"workload", "strategy", "runtime", "status", "median_s", "ci_low_s",
            "compile_s", "bytes_copied_per_run", "peak_rss_bytes"} <= set(df.columns)
    ok = df[(df.workload == "gemm:m=8") & (df.strategy == "shared") & (df.runtime == "wasmtime")]
    assert ok.compile_s.iloc[0] == pytest.approx(0.03)
    assert ok.peak_rss_bytes.iloc[0] == 12 << 20  # above the worker's baseline
    samples = pd.read_csv(d / "samples.csv")
    assert len(samples) == 9 * 8


def test_partial_run_says_what_is_missing(tmp_path: Path) -> None:
    rows = [*ROWS[:2], _row("gemm:m=8", "host-call", "wasmtime", kind="round", round=0),
            _row("gemm:m=8", "host-call", "wasmtime", kind="round", round=1, median=3e-3)]
    planned = [f"gemm:m=8 | {s} | {rt}" for s in ("shared", "per-module", "host-call")
               for rt in ("wasmtime", "v8")]
    d = make_run(tmp_path, rows, status="interrupted", cells_planned=6, rounds_done=2,
                 schedule={"rounds": 3, "cells": ["noop | noop:mode=call | wasmtime", *planned]})
    with (d / "results.jsonl").open("a") as f:
        f.write('{"run_id": "r1", "workl')  # torn last line
    with pytest.warns(UserWarning, match="truncated"):
        page = write_report(d).html.read_text()
    banner = page.split('id="incomplete"')[1].split("</section>")[0]
    assert "interrupted" in banner and "rounds done 2 of 3" in banner
    assert "2 cells finished out of 6 planned" in banner and "1 partial" in banner
    assert "<code>gemm:m=8 | host-call | wasmtime</code>" in banner
    assert "<code>gemm:m=8 | host-call | v8</code>" in banner and "3 not started" in banner
    assert "noop" not in banner
    # the partial cell is reported from its two rounds, and says so
    assert "partial: the run stopped after round(s) 0, 1 of this cell" in page
    with pytest.warns(UserWarning, match="truncated"):
        run = load_run(d)
    assert run.cell("gemm:m=8", "host-call", "wasmtime").summary.n == 18


def test_median_without_samples_is_reported_as_such(tmp_path: Path) -> None:
    imported = {**_row("gemm:m=8", "shared", "wasmtime"), "samples_s": [], "median_s": 2e-3}
    d = make_run(tmp_path, [imported, ROWS[1]])
    run = load_run(d)
    cell = run.cell("gemm:m=8", "shared", "wasmtime")
    assert cell.ok and cell.median == 2e-3 and "no raw samples" in cell.reason
    assert "no raw samples" in write_report(d).html.read_text()


def test_run_without_any_rows_still_renders(tmp_path: Path) -> None:
    d = make_run(tmp_path, [], status="running", cells_planned=4)
    page = write_report(d).html.read_text()
    assert "Incomplete run" in page and "No workload cells in this run yet" in page


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = make_run(tmp_path, ROWS[:2])
    assert main(["report", str(d), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "report.html").is_file()
    assert (tmp_path / "out" / "results.csv").is_file()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_colours_are_fixed_per_strategy_base() -> None:
    a = strategy_styles(["shared", "per-module", "per-module:resident=1"])
    b = strategy_styles(["per-module", "host-call:mode=paged", "shared"])
    assert a["shared"] == b["shared"] and a["per-module"] == b["per-module"]
    assert a["per-module:resident=1"].hatch and a["per-module:resident=1"] != a["per-module"]
    assert base_colour("my-strategy") == base_colour("my-strategy")
    assert len({base_colour(s) for s in ("shared", "per-module", "multi-memory", "host-call",
                                          "per-device")}) == 5


def test_growing_cells_get_the_growth_section(tmp_path: Path) -> None:
    """Cells whose plan grew a memory: their grows, time growing and linear memory before
    and after, and a figure per growing workload; cells that grew nothing are not there."""
    grown = {"compile_s": {"a": 0.01}, "first_run_s": 4e-3, "grows": 2, "grow_s": 1e-4}
    rows = [_row("decode:tokens=64", "shared", "wasmtime", median=1e-3),
            _row("decode:tokens=64", "per-module", "wasmtime", median=3e-3),
            _row("gemm:m=8", "shared", "wasmtime")]
    rows[0]["phases"] = grown
    rows[0]["memory"] = {"linear_bytes_after_setup": 65 * 65536, "linear_bytes": 67 * 65536}
    rows[1]["phases"] = {**grown, "grows": 4, "grow_s": 3e-4}
    page = write_report(make_run(tmp_path, rows)).html.read_text()
    table = page[page.index('id="growths"'):page.index("</table>", page.index('id="growths"'))]
    assert table.count("<tr>") == 3 and "gemm" not in table  # header + two growing cells
    assert 'class="num">4</td>' in table and "4.1 MiB" in table and "4.2 MiB" in table
    assert 'alt="grows of decode:tokens=64"' in page


def test_threaded_cells_get_the_concurrency_section(tmp_path: Path) -> None:
    """threads=N cells: throughput against agents per engine, speed-up over one agent (per
    request: a batch of two serves twice the requests), efficiency, hand-off cost, the
    machine's CPUs and pinning, engines without agents, and the race outcome."""
    def agents(n: int) -> dict[str, Any]:
        return {"timing": {"agents": {"agents": n, "cpus": list(range(n)),
                                      "handoff_s": 3e-5}}}

    rows = [_row("gemm:m=256", "shared:threads=1", "wasmtime", median=1e-3),
            _row("gemm:m=256", "shared:threads=2", "wasmtime", median=0.625e-3, **agents(2)),
            _row("gemm:m=256", "shared:threads=2,split=batch", "wasmtime", median=1.25e-3,
                 **agents(2)),
            _row("gemm:m=256", "shared:threads=4", "wasmtime", status="unsupported",
                 reason="4 agents need 4 CPUs of their own; this worker may run on 2"),
            _row("gemm:m=256", "shared:threads=2", "wasm3", status="unsupported",
                 reason="wasm3 lacks shared-memory, threads"),
            {"run_id": "r1", "workload": "race:scratch", "strategy": "shared:threads=2",
             "runtime": "wasmtime", "status": "ok", "kind": "race",
             "reason": "10/10 inferences' rows of agent 0 wrong", "metrics": {
                 "outcome": "corrupted", "runs": 10, "corrupted_runs": 10}}]
    page = write_report(make_run(tmp_path, rows, concurrency={
        "cpu_count": 2, "worker_cpus": [0, 1], "pinning": "agent i on the i-th CPU"})).html \
        .read_text()
    section = page[page.index('id="concurrency"'):]
    table = section[section.index('id="scalings"'):section.index("</table>")]
    assert table.count("<tr>") == 4  # header, one agent, two agents, a batch of two
    assert "1.60×" in table and "80%" in table  # 1 ms / 0.625 ms, over two agents
    assert "1.60×" in table.split("split=batch")[1]  # 2 requests in 1.25 ms
    assert "30.0 µs" in table or "30 µs" in table
    assert "2 CPUs; workers may run on CPUs 0, 1" in section
    assert "wasm3</b>: wasm3 lacks shared-memory, threads" in section
    assert "shared:threads=4 on wasmtime" in section
    assert 'alt="scaling of gemm:m=256 on wasmtime"' in section
    races = section[section.index('id="races"'):]
    assert "corrupted" in races and "10/10" in races

"""Every runtime adapter, through its real worker: probed capabilities against known facts,
small plans end to end, traps, embedding overhead, and a worker killed mid-cell."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.probes.overhead import HOST_CALLS, measure_overhead
from harness.probes.probe import ProbeResult, probe_runtime
from harness.run.cell import run_cell
from harness.run.pipeline import execute
from harness.run.request import Cell, RunRequest
from harness.runtimes import hostfuncs, wasmer_env
from harness.runtimes.browser_runtime import BrowserRuntime
from harness.runtimes.v8_runtime import HOSTFUNCS_JS, TIER_FLAGS, V8Runtime
from harness.runtimes.wasmtime_runtime import WasmtimeRuntime
from harness.store.rows import read_rows
from harness.toolchain import node_dist
from harness.worker.measure import MeasureSettings
from tests.test_cells import _TrapWorkload

RUNTIMES = ("wasmtime", "wasmer", "wasm3", "v8", "jsc", "chromium", "firefox")


def _require(regs, spec: str):
    """The runtime, or a skip when this machine genuinely lacks what it needs (no Python
    3.10 for wasmer, no node for V8). Anything else unavailable is a failure: a broken
    adapter must fail CI."""
    rt = regs.runtimes.create(spec)
    if rt.NAME == "wasmer" and wasmer_env.find_python310()[0] is None:
        pytest.skip("no Python 3.10 on this machine")
    if isinstance(rt, V8Runtime):
        build = rt.build()
        if build.source == "npm" and not node_dist.is_installed(build) \
                and shutil.which("npm") is None:
            pytest.skip(f"no npm to install {build.package}")
        if spec == "v8@20" and build.source != "system":
            pytest.skip("the system Node is not 20.x here")
        rt.prepare()
    if rt.NAME == "jsc" and shutil.which("jsc") is None:
        pytest.skip("no jsc shell here (make env installs it when run as root)")
    if isinstance(rt, BrowserRuntime):
        if rt.executable() is None:
            pytest.skip(f"no {rt.NAME} here (make env installs it when run as root)")
        rt.prepare()
    reason = rt.unavailable_reason()
    assert reason is None, f"{spec} unavailable: {reason}"
    return rt


@pytest.fixture(scope="module")
def probes(regs) -> dict[str, ProbeResult]:
    out = {spec: probe_runtime(_require(regs, spec)) for spec in RUNTIMES}
    v8_20 = regs.runtimes.create("v8@20")
    if v8_20.build().source == "system":   # else the tests that need it skip
        out["v8@20"] = probe_runtime(v8_20)
    return out


@pytest.mark.parametrize("spec, capability, present", [
    ("wasmtime", "multi-memory", True),
    ("wasmtime", "shared-memory", True),   # needs the SharedMemory import fix
    ("wasmtime", "memory64", True),
    ("wasmer", "multi-memory", False),     # wasmer-python 1.1.0 embeds wasmer 2.x
    ("wasmer", "imported-memory", True),
    ("wasmtime", "relaxed-simd", True),
    ("wasm3", "simd128", False),
    ("wasm3", "relaxed-simd", False),
    ("wasmer", "relaxed-simd", False),     # "Unknown 0xfd subopcode" (wasmer 2.x)
    ("wasm3", "multi-memory", False),      # one memory per wasm3 runtime
    ("wasm3", "memory64", False),
    ("wasm3", "host-func-import", True),
    ("v8", "multi-memory", True),          # V8 13.6 in Node 24
    ("v8", "simd128", True),
    ("v8", "relaxed-simd", True),
    ("v8", "memory64", True),
    ("v8", "shared-memory", True),
    ("v8", "custom-page-sizes", False),    # no V8 flag for it yet
    ("v8@20", "multi-memory", False),      # V8 11.3 in Node 20, not even behind a flag
    ("v8@20", "relaxed-simd", False),      # behind --experimental-wasm-relaxed-simd
    ("v8@20", "memory64", False),
    ("wasmtime", "tail-call", True),
    ("wasmtime", "custom-page-sizes", True),   # Config.wasm_custom_page_sizes, which we set
    ("wasm3", "custom-page-sizes", False),     # accepts the module, ignores the page size
    ("jsc", "simd128", True),
    ("jsc", "imported-memory", True),
    ("jsc", "multi-memory", False),            # WebKitGTK 2.50's shell, with or without options
    ("jsc", "memory64", False),
    ("jsc", "relaxed-simd", False),            # behind --useWasmRelaxedSIMD=true
    ("chromium", "multi-memory", True),        # Chromium 156
    ("chromium", "memory64", True),
    ("firefox", "multi-memory", True),         # Firefox ESR 153
    ("firefox", "shared-memory", True),        # the page is cross-origin isolated
])
def test_probe_matches_known_facts(probes, spec: str, capability: str, present: bool) -> None:
    if spec not in probes:
        pytest.skip(f"{spec}: the system Node is not that version here")
    p = probes[spec]
    assert p.status == "ok", p.message
    assert p.has(capability) is present, p.capabilities[capability]


@pytest.mark.parametrize("spec", RUNTIMES)
def test_relaxed_gemm_runs_or_names_missing_relaxed_simd(regs, probes, quick_settings,
                                                         spec: str) -> None:
    cell = Cell(regs.workloads.create("gemm:m=5,n=6,k=7,isa=relaxed"),
                regs.strategies.create("shared"), _require(regs, spec))
    row = run_cell(cell, "t", quick_settings, 60, probes[spec])
    if probes[spec].has("relaxed-simd"):
        assert row.status == "ok", row.reason
    else:
        assert row.status == "unsupported" and "relaxed-simd" in row.reason, row.reason


def test_probe_records_versions(probes) -> None:
    assert probes["wasmtime"].version == "50.0.1"
    assert "1.1.0" in probes["wasmer"].version
    assert probes["v8"].version.startswith("13.6.") and \
        probes["v8"].info["node"] == "v" + node_dist.PINNED[node_dist.DEFAULT_MAJOR]
    if "v8@20" in probes:
        assert probes["v8@20"].version.startswith("11.") and \
            probes["v8@20"].info["node"].startswith("v20.")


def test_a_feature_behind_a_flag_is_found_and_said_never_on_by_default(regs) -> None:
    """`membench probe` tries the flag that turns on what an engine lacks, and records the
    flagged spec beside the plain result; the plain spec keeps it off."""
    rt = _require(regs, "v8@20")
    got = probe_runtime(rt, try_flags=True)
    relaxed = got.capabilities["relaxed-simd"]
    assert not relaxed["ok"] and relaxed["flag"] == {
        "spec": "v8@20:flags=--experimental-wasm-relaxed-simd", "ok": True, "detail": ""}
    # V8 11.3 has no multi-memory flag at all: Node refuses it, and the probe says so
    mm = got.capabilities["multi-memory"]["flag"]
    assert not mm["ok"] and "bad option" in mm["detail"], mm
    # a flag in the spec is in the worker's command line, and the worker reports it
    flagged = regs.runtimes.create("v8@20:flags=--experimental-wasm-relaxed-simd")
    assert "--experimental-wasm-relaxed-simd" in flagged.worker_argv()
    assert probe_runtime(flagged).has("relaxed-simd")


def test_jsc_has_relaxed_simd_behind_an_option_and_says_its_version(regs) -> None:
    rt = _require(regs, "jsc")
    got = probe_runtime(rt, try_flags=True)
    assert got.status == "ok" and got.version and got.version != "unknown"
    relaxed = got.capabilities["relaxed-simd"]
    assert not relaxed["ok"] and relaxed["flag"] == {
        "spec": "jsc:flags=useWasmRelaxedSIMD", "ok": True, "detail": ""}


def test_malformed_v8_flags_are_refused_at_the_spec(regs) -> None:
    from harness.core.errors import SpecError

    with pytest.raises(SpecError, match="--name"):
        regs.runtimes.create("v8:flags=liftoff")


@pytest.mark.parametrize("spec, strategy", [
    *((spec, s) for spec in RUNTIMES for s in ("shared", "per-module")),
    ("wasmer:compiler=singlepass", "shared"), ("v8:tier=liftoff", "shared"),
    ("wasmtime:engine=pulley", "per-module"),
])
def test_small_plans_verify_on_every_runtime(regs, quick_settings, spec, strategy) -> None:
    rt = _require(regs, spec)
    # two dispatches: also catches an embedding that resolves an export of the wrong module
    cell = Cell(regs.workloads.create("mlp:batch=3,sizes=12-8-5,isa=scalar"),
                regs.strategies.create(strategy), rt)
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.counters["calls"] == 2 and len(row.samples_s) == quick_settings.samples
    assert row.runtime_info["spec"] == rt.spec and row.runtime_info["version"]


@pytest.mark.parametrize("spec", RUNTIMES)
def test_trap_is_trapped_on_every_runtime(regs, quick_settings, spec) -> None:
    cell = Cell(_TrapWorkload(), regs.strategies.create("shared"), _require(regs, spec))
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "trapped", row.reason
    assert "unreachable" in row.reason.lower()


@pytest.mark.parametrize("spec", RUNTIMES)
def test_embedding_overhead_is_measured(regs, spec) -> None:
    settings = MeasureSettings(warmup_s=0.0, warmup_runs=1, sample_s=0.001, samples=3)
    ov = measure_overhead(_require(regs, spec), settings=settings)
    assert ov.status == "ok", ov.message
    assert ov.call_s is not None and ov.call_s > 0
    assert ov.host_call_s is not None and ov.host_call_s >= 0
    assert ov.to_dict()["host_calls_per_sample"] == HOST_CALLS


def test_wasmtime_config_is_recorded(regs, quick_settings) -> None:
    rt = regs.runtimes.create("wasmtime:bounds=explicit,engine=pulley,opt=none")
    cell = Cell(regs.workloads.create("gemm:m=3,n=4,k=5,isa=scalar"), regs.strategies.create("shared"), rt)
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    cfg = row.runtime_info["config"]
    assert cfg["engine"] == "pulley" and cfg["target"] == "pulley64"
    assert cfg["bounds"] == "explicit" and cfg["memory_reservation"] == 0
    assert cfg["opt"] == "none"


def test_v8_tier_flags_exist_in_this_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH")
    options = subprocess.run(["node", "--v8-options"], capture_output=True, text=True,
                             timeout=60).stdout
    for tier, flags in TIER_FLAGS.items():
        for flag in flags:
            name = flag.replace("--no-", "--")
            assert f"  {name} " in options, f"{tier}: V8 has no flag {name}"
        assert V8Runtime(tier=tier).unavailable_reason() is None


def test_every_host_function_kind_has_a_js_implementation() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH")
    out = subprocess.run(["node", "-e", f"console.log(JSON.stringify(require("
                          f"{json.dumps(str(HOSTFUNCS_JS))}).kinds))"],
                         capture_output=True, text=True, timeout=60, check=True)
    missing = set(hostfuncs.SIGNATURES) - set(json.loads(out.stdout))
    assert not missing, f"host function kinds without a JavaScript implementation: {missing}"


class _KilledMidCell(WasmtimeRuntime):
    """The real worker, SIGKILLed mid-cell: after loading the plan and running the first
    inference, as its timing loop starts (probes and overhead requests run normally)."""

    NAME = "wasmtime"

    def worker_argv(self) -> list[str]:
        code = ("import os, signal, sys\n"
                "import harness.worker.group as g, harness.worker.main as w\n"
                "def die(*a, **k): os.kill(os.getpid(), signal.SIGKILL)\n"
                "w.time_steady = g.time_interleaved = die\n"
                "sys.exit(w.main(sys.argv[1:]))\n")
        return [sys.executable, "-c", code]


def test_killed_worker_leaves_other_runtimes_cells_intact(regs, quick_settings,
                                                          tmp_path: Path) -> None:
    w = regs.workloads.create("gemm:m=8,n=8,k=8,isa=scalar")
    s = regs.strategies.create("shared")
    wasm3, v8 = _require(regs, "wasm3"), _require(regs, "v8")
    cells = [Cell(w, s, wasm3), Cell(w, s, _KilledMidCell()), Cell(w, s, v8)]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    req = RunRequest((w.spec,), (s.spec,), ("wasm3", "wasmtime", "v8"),
                     settings=quick_settings, cell_timeout=60, calibrate=False)
    rows = [r for r in execute(cells, run_dir, req) if r.kind == "cell"]
    assert [r.status for r in rows] == ["ok", "crashed", "ok"], [r.reason for r in rows]
    assert "SIGKILL" in rows[1].reason
    on_disk = read_rows(run_dir)
    assert sorted((r.runtime, r.status) for r in on_disk) == \
        sorted((r.runtime, r.status) for r in rows)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["runtimes"]["v8"]["overhead"]["status"] == "ok"


def test_jsc_leaves_out_the_memory_figures_it_cannot_see(regs, quick_settings) -> None:
    """The jsc shell reads no /proc: its rows carry the plan's linear memory, and no RSS or
    virtual-size figure at all rather than a made-up 0."""
    cell = Cell(regs.workloads.create("mlp:batch=3,sizes=12-8-5,isa=scalar"),
                regs.strategies.create("per-module"), _require(regs, "jsc"))
    row = run_cell(cell, "t", quick_settings, 60)
    assert row.status == "ok", row.reason
    assert row.memory["linear_bytes"] > 0 and row.memory["memories"] >= 2
    assert not [k for k in row.memory if "rss" in k or "vms" in k], row.memory



@pytest.mark.parametrize("spec", ["chromium", "firefox"])
def test_a_browser_page_is_isolated_and_its_samples_are_sized_to_its_timer(
        regs, quick_settings, spec: str) -> None:
    """The page is cross-origin isolated (fine timer, SharedArrayBuffer), reports its timer's
    tick and makes samples at least 200 ticks; memory it cannot see is left out."""
    cell = Cell(regs.workloads.create("gemm:m=5,n=6,k=7"), regs.strategies.create("per-module"),
                _require(regs, spec))
    row = run_cell(cell, "t", quick_settings, 120)
    assert row.status == "ok", row.reason
    cfg = row.runtime_info["config"]
    assert cfg["cross_origin_isolated"] is True and 0 < cfg["timer_tick_s"] <= 1e-4
    assert cfg["min_sample_s"] == pytest.approx(200 * cfg["timer_tick_s"])
    assert row.bytes_copied_per_run > 0 and not [k for k in row.memory if "rss" in k]

"""`load=`: weights written by the host, carried as active or passive data segments, or
mapped copy-on-write from a precompiled module; each verified, and refused where it
cannot be."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import wasmtime

from harness.codegen.module import assemble
from harness.core.errors import SpecError
from harness.plugins.plan import Call, Write
from harness.plugins.wasmbin import fill_data
from strategies.weight_load import INIT_EXPORT
from tests.probed import probed_row

ROOT = Path(__file__).resolve().parents[1]
_WAT = """(module (memory (export "m") 1) (memory $b i64 1)
  (data (i32.const 8) "")
  (data $p "")
  (data (memory $b) (i64.const 300) "")
  (func (export "init") (memory.init 0 $p (i32.const 100) (i32.const 0) (i32.const 3)))
  (func (export "b") (param i64) (result i32) (i32.load8_u $b (local.get 0))))"""
_PAYLOADS = (b"\x01\x02\x03\x04", b"\x0a\x0b\x0c", bytes(range(200)) * 2)


_row = probed_row


def test_filled_segments_land_where_they_aim() -> None:
    wasm = fill_data(assemble(_WAT), list(_PAYLOADS))
    store = wasmtime.Store()
    inst = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])
    inst.exports(store)["init"](store)
    mem = inst.exports(store)["m"].read(store, 0, 104)
    assert mem[8:12] == _PAYLOADS[0] and mem[100:103] == _PAYLOADS[1]
    assert inst.exports(store)["b"](store, 300 + 399) == _PAYLOADS[2][399]
    with pytest.raises(ValueError, match="3 data segments; 2 payloads"):
        fill_data(assemble(_WAT), list(_PAYLOADS[:2]))


@pytest.mark.skipif(shutil.which("node") is None, reason="no node on PATH")
def test_the_js_worker_fills_segments_byte_for_byte_as_python_does(tmp_path: Path) -> None:
    wasm = assemble(_WAT)
    script = (f"const {{ fillData }} = require({json.dumps(str(ROOT / 'harness/runtimes/js_wasmbin.js'))});"
              f"const w = Uint8Array.from({json.dumps(list(wasm))});"
              f"const p = {json.dumps([list(p) for p in _PAYLOADS])}.map((a) => Uint8Array.from(a));"
              "process.stdout.write(JSON.stringify(Array.from(fillData(w, p))));")
    out = subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True)
    assert bytes(json.loads(out.stdout)) == fill_data(wasm, list(_PAYLOADS))


def test_segment_plans_write_no_weights_and_carry_each_once(regs) -> None:
    w = regs.workloads.create("transformer-block")
    weights = {t.name for t in w.by_role("weight")}
    for spec in ("shared:load=segment", "multi-memory:weights=separate,load=segment"):
        plan = regs.strategies.create(spec).plan(w)
        assert not [s for s in plan.setup if isinstance(s, Write)]
        carried = [t for m in plan.modules for t in m.segments]
        assert sorted(carried) == sorted(weights)
    passive = regs.strategies.create("shared:load=passive").plan(w)
    inits = [s for s in passive.setup if isinstance(s, Call)]
    assert inits and all(c.export == INIT_EXPORT for c in inits)
    assert "bulk-memory" in passive.requires


def test_cow_modules_are_precompiled_and_carry_their_own_weights(regs) -> None:
    w = regs.workloads.create("mlp-digits")
    plan = regs.strategies.create("per-module:resident=1,load=cow").plan(w)
    assert "module-image" in plan.requires
    assert all(m.precompiled for m in plan.modules)
    assert sorted(t for m in plan.modules for t in m.segments) == \
        sorted(t.name for t in w.by_role("weight"))


@pytest.mark.parametrize("runtime", ["wasmtime", "v8"])
def test_every_placement_verifies(regs, quick_settings, runtime: str) -> None:
    """Outputs checked against NumPy; the inference does the same work as with copy."""
    forms = ["shared", "per-module:resident=1", "multi-memory:weights=separate", "per-device"]
    for base in forms:
        copy = _row(regs, quick_settings, "mlp-digits", base, runtime)
        assert copy.status == "ok", (base, copy.reason)
        loads = ["segment", "passive"] + (["cow"] if base.startswith("per-module") else [])
        for load in loads:
            row = _row(regs, quick_settings, "mlp-digits", f"{base},load={load}"
                       if ":" in base else f"{base}:load={load}", runtime)
            if load == "cow" and runtime != "wasmtime":
                assert row.status == "unsupported" and "module-image" in row.reason
                continue
            assert row.status == "ok", (base, load, row.reason)
            assert row.counters == copy.counters


def test_a_mapped_image_is_not_resident_until_read(regs, quick_settings) -> None:
    """16 MiB of weights: copied, they are resident after loading; mapped copy-on-write
    from the precompiled module, they are not (the first inference faults them in)."""
    gemv = "gemv:m=2048,k=2048"
    copy = _row(regs, quick_settings, gemv, "per-module:resident=1", "wasmtime")
    cow = _row(regs, quick_settings, gemv, "per-module:resident=1,load=cow", "wasmtime")
    assert copy.status == cow.status == "ok", (copy.reason, cow.reason)
    size = 2048 * 2048 * 4

    def added(row) -> int:
        return row.memory["rss_after_load"] - row.memory["rss_start"]
    assert added(copy) >= 0.9 * size
    assert added(cow) < 0.25 * size
    assert cow.memory["rss_first_delta"] >= 0.9 * size
    assert cow.phases["precompile_s"]


def test_forms_that_cannot_place_weights_so_are_refused(regs) -> None:
    for spec, match in (("shared:load=cow", "load=cow"), ("per-device:load=cow", "load=cow"),
                        ("per-module:load=segment", "resident=1"),
                        ("multi-memory:lowered=1,load=segment", "load="),
                        ("host-call:load=segment", "load")):
        with pytest.raises(SpecError, match=match):
            regs.strategies.create(spec)


def test_v8_refuses_modules_over_1gib_before_any_work(regs) -> None:
    plan = regs.strategies.create("shared:load=segment").plan(
        regs.workloads.create("gemv:m=16384,k=16384"))
    why = regs.runtimes.create("v8").refuses(plan)
    assert why is not None and str(1 << 30) in why
    assert regs.runtimes.create("wasmtime").refuses(plan) is None
    copy = regs.strategies.create("shared").plan(regs.workloads.create("gemv:m=16384,k=16384"))
    assert regs.runtimes.create("v8").refuses(copy) is None


def test_standalone_programs_say_segments_are_not_theirs(regs, quick_settings) -> None:
    row = _row(regs, quick_settings, "mlp-digits", "shared:load=segment", "wasm2c")
    if row.status == "unavailable":
        pytest.skip(row.reason)
    assert row.status == "unsupported" and "load=copy only" in row.reason

"""Memories that grow under live instances (the plan's `Grow` step): every importer sees
the new pages at once, the host reads every address again after a grow (an engine may
move the memory; a JavaScript memory's ArrayBuffer is replaced), only the first inference
grows, and the worker counts and times the grows. A JS host that keeps a stale view is
caught (`v8:stale_views=1`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from harness.codegen.module import assemble
from harness.core.errors import PlanError
from harness.core.protocol import save_tensors
from harness.plugins.plan import (
    PAGE,
    Call,
    Device,
    Grow,
    Import,
    Instance,
    Memory,
    Module,
    Placement,
    Plan,
    Read,
    Region,
    Write,
)
from harness.worker.launch import run_worker

N = 256  # floats a call doubles
#: doubles N floats from `src` into `dst`, both in the imported heap
DOUBLE = assemble(f"""(module
  (import "env" "heap" (memory 1 8))
  (func (export "run") (param $src i32) (param $dst i32) (local $i i32)
    (loop $l
      (f32.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
        (f32.mul (f32.const 2)
          (f32.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 2))))))
      (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                          (i32.const {N}))))))""")
NB = 4 * N
#: x in the first page; y in the third, which exists only after the grow
X, MID, Y = 0, 2 * PAGE + 4096, 2 * PAGE + 8192


def growing_plan(grow_to: int = 3) -> Plan:
    """x written into a 1-page heap; the heap grown to `grow_to` pages; one instance
    doubles x into the new pages, a second doubles that again; y read from them."""
    heap = Region("heap", 0, 0)
    return Plan(
        workload="grow-test", strategy="test", devices=(Device("dev0"),),
        memories=(Memory("heap", "dev0", "host", min_pages=1, max_pages=8),),
        modules=(Module("double", DOUBLE),),
        instances=tuple(Instance(n, "double", "dev0", (Import("env", "heap", "memory", "heap"),))
                        for n in ("a", "b")),
        placements=(Placement("x", dataclasses.replace(heap, offset=X, size=NB)),
                    Placement("y", dataclasses.replace(heap, offset=Y, size=NB))),
        setup=(),
        run=(Write("x", Region("heap", X, NB)), Grow("heap", grow_to),
             Call("a", "run", (X, MID)), Call("b", "run", (MID, Y)),
             Read("y", Region("heap", Y, NB))),
        requires=frozenset({"imported-memory"}))


def run_plan(spec: str, regs, quick_settings, plan: Plan, tmp: Path) -> tuple[str, str, dict,
                                                                             np.ndarray | None]:
    """The plan run by `spec`'s worker: (status, message, phases, y or None)."""
    runtime = regs.runtimes.create(spec)
    why = runtime.unavailable_reason()
    if why:
        pytest.skip(why)
    x = np.linspace(-1, 1, N, dtype=np.float32)
    (tmp / "plan.json").write_text(plan.to_json())
    request = {"kind": "cell", "runtime": spec, "plan_path": str(tmp / "plan.json"),
               "inputs": save_tensors(tmp, {"x": x}), "settings": quick_settings.to_dict()}
    out = run_worker(runtime, request, tmp, 60)
    resp = out.response or {}
    path = resp.get("outputs", {}).get("y")
    y = np.fromfile(path, dtype=np.float32) if path else None
    return out.status, out.message, resp.get("phases", {}), y


def test_grow_steps_in_a_plan() -> None:
    plan = growing_plan()
    assert Plan.from_json(plan.to_json()) == plan
    assert plan.grown_pages() == {"heap": 3} and plan.first_grows() == 1
    # a second Grow to as many pages grows nothing; one to more grows again
    again = dataclasses.replace(plan, run=(*plan.run, Grow("heap", 3), Grow("heap", 4)))
    assert again.first_grows() == 2
    with pytest.raises(PlanError, match="outside memory heap"):  # y is past 2 pages
        growing_plan(grow_to=2).validate()
    with pytest.raises(PlanError, match="over its maximum of 8"):
        dataclasses.replace(plan, run=(Grow("heap", 9),)).validate()


@pytest.mark.parametrize("spec", ["wasmtime", "wasmtime:bounds=explicit", "wasmer", "v8"])
def test_every_importer_sees_a_grow_and_the_host_follows_it(spec: str, regs, quick_settings,
                                                            tmp_path: Path) -> None:
    """Two live instances import the heap; it grows between the host's write and their
    calls; the result is read from the new pages. Only the first inference grows (the
    worker checks every later one gives the same outputs), and the phases say so."""
    status, message, phases, y = run_plan(spec, regs, quick_settings, growing_plan(),
                                          tmp_path)
    assert status == "ok", message
    assert y is not None
    np.testing.assert_array_equal(y, 4 * np.linspace(-1, 1, N, dtype=np.float32))
    assert phases["grows"] == 1 and 0 < phases["grow_s"] < 1


def test_a_js_host_with_a_stale_view_is_caught(regs, quick_settings, tmp_path: Path) -> None:
    """The bug the growing plans exist to catch: a JS host that keeps the view it made
    before the grow (the detached ArrayBuffer) cannot read the result."""
    status, message, _, y = run_plan("v8:stale_views=1", regs, quick_settings,
                                     growing_plan(), tmp_path)
    assert status == "crashed" and y is None
    assert "outside memory heap (0 bytes now)" in message  # the detached view


def test_a_standalone_program_refuses_a_growing_plan(regs, quick_settings,
                                                     tmp_path: Path) -> None:
    status, message, _, _ = run_plan("wasm2c", regs, quick_settings, growing_plan(), tmp_path)
    assert status != "ok" and "does not grow memories" in message

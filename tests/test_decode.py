"""decode: tokens through the transformer block over a KV cache that grows, every module
instantiated. Each token's output matches NumPy; the memory that holds the cache grows
(the heap every module imports, the module memories of per-module, the host-call host's
heap), only on the first inference, counted and timed; a JS host's stale view is caught;
strategies that cannot follow a growing tensor, and engines that cannot grow, say why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.core.errors import Unsupported
from harness.core.protocol import save_tensors
from harness.plugins.plan import Copy, Grow, Plan
from harness.plugins.verify import compare
from harness.plugins.workload import Dispatch
from harness.worker.launch import run_worker
from tests.kernelrun import run_verified
from workloads.kernels.kv_cache import KvAppendKernel
from workloads.models.decode import ROW

#: a 69 KiB cache, more than a 64 KiB page: whatever slack the initial pages leave, the
#: memory that holds it grows at least once
TOKENS = 30
SPEC = f"decode:tokens={TOKENS}"
#: the memories each strategy grows
GROWN = {"shared": {"heap"}, "shared:memory64=1": {"heap"}, "multi-memory": {"heap"},
         "per-module": {"kv_append.memory", "attention.memory"},
         "host-call:mode=paged": {"heap"}, "host-call:host=wasm": {"heap"}}


def test_decode_structure(regs) -> None:
    w = regs.workloads.create("decode:tokens=3")
    assert len(w.dispatches) == 48 and len({d.instance for d in w.dispatches}) == 16
    assert [d.name for d in w.dispatches[:2]] == ["t0.rmsnorm_att", "t0.proj_wq"]
    assert w.tensor("kv_cache").shape == (3, 2, 288)
    ext = w.extents()["kv_cache"]
    assert [ext[k] for k, d in enumerate(w.dispatches) if d.instance == "kv_append"] == \
        [ROW, 2 * ROW, 3 * ROW]
    assert [ext[k] for k, d in enumerate(w.dispatches) if d.instance == "attention"] == \
        [0, ROW, 2 * ROW]
    # token i reads token i-1's output
    assert w.dispatches[16].bindings[0] == ("x", "y0")
    assert w.flops() > 3 * regs.workloads.create("transformer-block:kv=1").flops() * 0.99


def test_dispatch_scalars_must_match_the_kernel() -> None:
    kernel = KvAppendKernel(8, 2, "scalar")
    with pytest.raises(ValueError, match="takes scalars"):
        Dispatch("d", kernel, (("k", "k"), ("v", "v"), ("kv_cache", "c")))


@pytest.mark.parametrize("strategy", sorted(GROWN))
def test_each_token_matches_numpy_while_the_memory_grows(regs, strategy: str) -> None:
    """In-process on wasmtime: every y{i} verified; the strategy's memories grow by its
    Grow steps, each on the first inference, with one instance per executable live all
    along; the census after the inference counts the grown pages."""
    lp, plan = run_verified(regs, SPEC, strategy)
    grows = [s for s in plan.run if isinstance(s, Grow)]
    assert {g.memory for g in grows} == GROWN[strategy]
    assert lp.grow_stats["grows"] == plan.first_grows() == len(grows) >= len(GROWN[strategy])
    kernels = [i for i in plan.instances if i.name != "host-shim"]
    assert len(kernels) == 16
    assert lp.memory_census() == plan.memory_census()
    lp.reset_counters()
    lp.run_once()  # the second inference grows nothing
    assert lp.grow_stats["grows"] == len(grows)


def test_per_module_copies_grow_with_the_cache(regs) -> None:
    plan = regs.strategies.create("per-module").plan(regs.workloads.create(SPEC))
    cache = plan.placement("kv_cache")
    into_attention = [s.dst.size for s in plan.run if isinstance(s, Copy)
                      and s.src.offset == cache.offset and s.src.memory == cache.memory
                      and s.dst.memory == "attention.memory"]
    assert into_attention == [i * ROW for i in range(1, TOKENS)]  # token 0 reads no row
    pages = [g.pages for g in plan.run if isinstance(g, Grow) and g.memory == "attention.memory"]
    assert pages == sorted(set(pages))


@pytest.mark.parametrize("strategy,why", [
    ("per-module:resident=1", "resident=1 keeps each tensor where it was written"),
    ("per-module:page=1", "pages of one byte"),
    ("per-device", "a device of its own"),
    ("multi-memory:lowered=1", "where the heap would grow"),
])
def test_strategies_that_cannot_follow_a_growing_cache_say_why(regs, strategy: str,
                                                                why: str) -> None:
    with pytest.raises(Unsupported, match=why) as exc:
        regs.strategies.create(strategy).plan(regs.workloads.create("decode:tokens=2"))
    assert "grows kv_cache during an inference" in str(exc.value)


def _run_cell(regs, runtime: str, plan: Plan, data: dict[str, np.ndarray],
              tmp: Path) -> tuple[str, str, dict[str, Any], dict[str, np.ndarray]]:
    """The plan run by `runtime`'s worker: (status, message, phases, outputs)."""
    rt = regs.runtimes.create(runtime)
    why = rt.unavailable_reason()
    if why:
        pytest.skip(why)
    (tmp / "plan.json").write_text(plan.to_json())
    request = {"kind": "cell", "runtime": runtime, "plan_path": str(tmp / "plan.json"),
               "inputs": save_tensors(tmp, data),
               "settings": {"warmup_s": 0.0, "warmup_runs": 1, "sample_s": 0.0005,
                            "samples": 2}}
    out = run_worker(rt, request, tmp, 120)
    resp = out.response or {}
    outputs = {k: np.fromfile(p, dtype=np.float32).reshape(1, -1)
               for k, p in resp.get("outputs", {}).items()}
    return out.status, out.message, resp.get("phases", {}), outputs


@pytest.mark.parametrize("runtime,strategy", [
    ("wasmer", "shared"), ("wasmer", "per-module"),
    ("v8", "shared"), ("v8", "per-module"), ("v8", "host-call:mode=paged"),
])
def test_other_engines_grow_under_live_modules(regs, runtime: str, strategy: str,
                                               tmp_path: Path) -> None:
    """The worker of each engine: wasmer and V8 grow from the host (V8's host refreshes
    its views; the JS host reallocates its heap buffer under host-call), every token
    verified, the grows counted and timed."""
    w = regs.workloads.create(SPEC)
    plan = regs.strategies.create(strategy).plan(w)
    data = w.generate(0)
    status, message, phases, outputs = _run_cell(regs, runtime, plan, data, tmp_path)
    assert status == "ok", message
    verdict = compare(outputs, w.reference(data), w.tolerance())
    assert verdict.ok, verdict.message
    assert phases["grows"] == plan.first_grows() >= 1 and phases["grow_s"] > 0


def test_a_js_host_with_stale_views_fails_the_decode(regs, tmp_path: Path) -> None:
    """The bug the workload exists to catch: a JS host that keeps the view it made before
    the heap grew cannot read what the tokens wrote after it."""
    w = regs.workloads.create(SPEC)
    plan = regs.strategies.create("shared").plan(w)
    status, message, _, _ = _run_cell(regs, "v8:stale_views=1", plan, w.generate(0), tmp_path)
    assert status == "crashed" and "outside memory heap" in message


def test_an_engine_that_cannot_grow_says_so(regs, tmp_path: Path) -> None:
    w = regs.workloads.create(f"{SPEC},isa=scalar")
    plan = regs.strategies.create("shared").plan(w)
    status, message, _, _ = _run_cell(regs, "wasm3", plan, w.generate(0), tmp_path)
    assert status == "unsupported" and "grow" in message

"""`page=1`: the memories modules define, in one-byte pages (custom-page-sizes), commit
what they hold; engines without the proposal say so."""

from __future__ import annotations

import pytest

from harness.core.errors import SpecError, Unsupported
from harness.plugins.wasmbin import module_info
from tests.probed import probed_row


def _row(regs, settings, strategy: str, runtime: str = "wasmtime"):
    return probed_row(regs, settings, "mlp-digits", strategy, runtime)


@pytest.mark.parametrize("base", ["per-module", "per-module:resident=1", "multi-memory"])
def test_one_byte_pages_commit_what_modules_hold(regs, quick_settings, base: str) -> None:
    """Verified, counted (the plan's linear bytes are checked against the worker's census),
    and smaller than with 64 KiB pages."""
    sep = "," if ":" in base else ":"
    small = _row(regs, quick_settings, f"{base}{sep}page=1")
    big = _row(regs, quick_settings, base)
    assert small.status == big.status == "ok", (small.reason, big.reason)
    assert small.memory["linear_bytes"] < big.memory["linear_bytes"]
    assert small.memory["memories"] == big.memory["memories"]


def test_module_memories_are_declared_in_byte_pages(regs) -> None:
    plan = regs.strategies.create("per-module:page=1").plan(regs.workloads.create("mlp-digits"))
    assert "custom-page-sizes" in plan.requires
    for m in plan.modules:
        [mt] = module_info(m.wasm).defined_memories
        assert mt.page_size_log2 == 0 and mt.min_bytes == mt.min_pages
        assert mt.min_bytes % 65536 != 0          # not rounded up to a wasm page


def test_engines_without_the_proposal_say_so(regs, quick_settings) -> None:
    row = _row(regs, quick_settings, "per-module:page=1", "wasmer")
    if row.status == "unavailable":
        pytest.skip(row.reason)
    assert row.status == "unsupported" and "custom-page-sizes" in row.reason


def test_forms_that_cannot_take_byte_pages_are_refused(regs) -> None:
    for spec in ("multi-memory:lowered=1,page=1", "multi-memory:built=merge,page=1"):
        with pytest.raises(SpecError, match="page=1"):
            regs.strategies.create(spec)
    with pytest.raises(Unsupported):   # wasm-ld has no custom page sizes
        regs.strategies.create("per-module:page=1").plan(
            regs.workloads.create("gemm:m=8,n=8,k=8,toolchain=clang"))

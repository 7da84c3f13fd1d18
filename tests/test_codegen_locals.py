"""Generated modules declare only the locals their body uses."""

from __future__ import annotations

import pytest

from harness.cli.export import variant_specs
from harness.codegen import DirectLowering, build_kernel_module


@pytest.mark.parametrize("family", ["rmsnorm", "layernorm", "softmax", "rope", "silu-mul",
                                    "gemm", "attention"])
def test_scalar_modules_contain_no_v128(regs, family: str) -> None:
    """A scalar variant must not need SIMD (wasm3 has none): no v128 anywhere in its WAT."""
    cls = regs.workloads.get(family)
    specs = [s for s in variant_specs(cls, small=True) if "isa=scalar" in s]
    assert specs, f"{family} has no scalar variant"
    for spec in specs:
        for d in regs.workloads.create(spec).dispatches:
            k = d.kernel
            lw = DirectLowering({"heap": "$m", "scratch": "$m"}, ["(memory $m 1)"])
            km = build_kernel_module(k, lw, dict.fromkeys(k.params(), "heap"))
            assert "v128" not in km.wat, f"{spec}: {d.name} declares v128"
            assert "simd128" not in km.features

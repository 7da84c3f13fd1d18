"""The `isa=simd|scalar` parameter of the kernel workloads (default simd, like gemm's: it is
what an ML runtime ships; runtimes without SIMD128 report the simd variant unsupported).

The packed-GEMM family (gemm, conv2d, mlp) has a third value, `relaxed`: SIMD128 plus the
relaxed-SIMD proposal's `f32x4.relaxed_madd` (FMA where the host has it). Runtimes without
relaxed SIMD report those cells unsupported, naming `relaxed-simd`."""

from __future__ import annotations

from harness.plugins.params import Param

ISA_PARAM = Param("isa", "choice", "simd", "SIMD128 (f32x4) code, or scalar f32 code",
                  choices=("scalar", "simd"))


def isa_features(isa: str) -> frozenset[str]:
    """Wasm features a kernel variant needs: runtimes without them report `unsupported`."""
    if isa == "relaxed":
        return frozenset({"simd128", "relaxed-simd"})
    return frozenset({"simd128"}) if isa == "simd" else frozenset()

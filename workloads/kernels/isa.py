"""The `isa=scalar|simd` parameter every kernel workload shares."""

from __future__ import annotations

from harness.params import Param

ISA_PARAM = Param("isa", "choice", "scalar", "scalar f32 code or SIMD128 (f32x4) code",
                  choices=("scalar", "simd"))


def isa_features(isa: str) -> frozenset[str]:
    """Wasm features a kernel variant needs: runtimes without SIMD report `unsupported`."""
    return frozenset({"simd128"}) if isa == "simd" else frozenset()

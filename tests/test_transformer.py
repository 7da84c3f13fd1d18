"""transformer-block: decode and prefill verify against the float64 NumPy block under the
shared and per-module strategies; structure (dispatches, KV cache tensors, FLOPs)."""

from __future__ import annotations

import pytest

from harness.core.errors import ShapeError
from tests.kernelrun import run_verified
from workloads.models.transformer import DIM, HIDDEN


@pytest.mark.parametrize("spec", ["transformer-block", "transformer-block:t=3,kv=7,isa=scalar",
                                  "transformer-block:t=13,kv=13"])
@pytest.mark.parametrize("strategy", ["shared", "per-module"])
def test_block_matches_numpy(regs, spec: str, strategy: str) -> None:
    run_verified(regs, spec, strategy)


def test_decode_structure(regs) -> None:
    w = regs.workloads.create("transformer-block")
    assert len(w.dispatches) == 15
    assert w.tensor("k_cache").shape == (255, DIM)  # 255 cached + the step's own position
    assert w.tensor("wq").shape == (DIM, DIM) and w.tensor("w1").shape == (HIDDEN, DIM)
    assert [d.kernel.name.split("_")[0] for d in w.dispatches[1:4]] == ["gemv"] * 3
    proj = 2 * (4 * DIM * DIM + 3 * DIM * HIDDEN)
    assert proj < w.flops() < proj * 1.2


def test_prefill_structure(regs) -> None:
    w = regs.workloads.create("transformer-block:t=256")
    names = {t.name for t in w.tensors}
    assert "k_cache" not in names and w.tensor("y").shape == (256, DIM)
    assert w.tensor("w1").shape == (DIM, HIDDEN)  # GEMM layout [in, out]
    assert w.dispatches[1].kernel.name.startswith("gemm_256x288x288")


def test_t_over_kv_is_refused(regs) -> None:
    with pytest.raises(ShapeError, match="do not fit"):
        regs.workloads.create("transformer-block:t=9,kv=8")

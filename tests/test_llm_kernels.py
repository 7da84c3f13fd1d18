"""Property tests for the transformer kernels (rope, silu-mul, attention): random small
shapes with tails, both ISAs, the kernel strategies, in-process on wasmtime vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.errors import ShapeError
from tests.kernelrun import check_workload, run_outputs
from workloads.kernels.attention import attention_reference
from workloads.kernels.rope import rope_tables

FAST = settings(max_examples=10, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
isas = st.sampled_from(["scalar", "simd"])


@FAST
@given(rows=st.integers(1, 4), heads=st.integers(1, 3), pairs=st.integers(1, 11),
       pos=st.integers(0, 300), isa=isas)
def test_rope(regs, rows: int, heads: int, pairs: int, pos: int, isa: str) -> None:
    check_workload(regs, f"rope:rows={rows},heads={heads},pairs={pairs},pos={pos},isa={isa}")


@FAST
@given(n=st.integers(1, 300), isa=isas, seed=st.integers(0, 3))
def test_silu_mul(regs, n: int, isa: str, seed: int) -> None:
    check_workload(regs, f"silu-mul:n={n},isa={isa}", seed)


@FAST
@given(t=st.integers(1, 5), past=st.integers(0, 9), heads=st.integers(1, 3),
       head_dim=st.integers(1, 19), isa=isas)
def test_attention(regs, t: int, past: int, heads: int, head_dim: int, isa: str) -> None:
    check_workload(regs, f"attention:t={t},past={past},heads={heads},head_dim={head_dim},"
                         f"isa={isa}")


def test_rope_at_position_zero_is_identity() -> None:
    cos, sin = rope_tables(np.array([0, 5]), 6)
    assert (cos[0] == 1).all() and (sin[0] == 0).all()
    assert sin[1, 0] == -sin[1, 1] != 0  # signed pairs: y0 = x0 c - x1 s, y1 = x0 s + x1 c


def test_rope_needs_even_head_dim() -> None:
    with pytest.raises(ShapeError, match="even"):
        rope_tables(np.arange(2), 5)


@pytest.mark.parametrize("isa", ["scalar", "simd"])
def test_attention_is_causal(regs, isa: str) -> None:
    """Prefill: changing the last token's key and value must not change earlier rows."""
    w = regs.workloads.create(f"attention:t=4,past=0,heads=2,head_dim=8,isa={isa}")
    data = w.generate(0)
    before = run_outputs(regs, w, "shared", data)["out"]
    data["k"][-1] += 3.0
    data["v"][-1] -= 3.0
    after = run_outputs(regs, w, "shared", data)["out"]
    assert np.array_equal(before[:-1], after[:-1])
    assert not np.allclose(before[-1], after[-1])
    want = attention_reference(data["q"], data["k"], data["v"], 2)
    np.testing.assert_allclose(after, want, rtol=1e-5, atol=1e-5)


def test_attention_decode_sees_the_whole_cache(regs) -> None:
    w = regs.workloads.create("attention:t=1,past=6,heads=1,head_dim=4")
    data = w.generate(0)
    before = run_outputs(regs, w, "shared", data)["out"]
    data["v_cache"][0] += 5.0  # the oldest cached position
    after = run_outputs(regs, w, "shared", data)["out"]
    assert not np.allclose(before, after)


def test_flops_and_compulsory_bytes(regs) -> None:
    def fb(spec: str) -> tuple[int, int]:
        w = regs.workloads.create(spec)
        return w.flops(), w.compulsory_bytes()

    # x, cos, sin, y: 2x(2*6) rows, tables 2x6
    assert fb("rope:rows=2,heads=2,pairs=3") == (3 * 24, 4 * (24 + 12 + 12 + 24))
    assert fb("silu-mul:n=10") == (50, 4 * 30)
    assert fb("add-relu:n=10") == (20, 4 * 30)
    # decode over 3 cached + 1 new position: 4 visible keys per head
    assert fb("attention:t=1,past=3,heads=2,head_dim=4") == (2 * 4 * (16 + 4),
                                                             4 * (3 * 8 + 2 * 3 * 8 + 8))
    # prefill of 3: 1 + 2 + 3 visible keys per head, no cache
    assert fb("attention:t=3,past=0,heads=1,head_dim=4")[0] == 6 * 20

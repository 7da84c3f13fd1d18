"""Property tests: every kernel family, random small shapes (tails included), both ISAs,
each kernel strategy registered (shared, multi-memory), in-process on wasmtime vs NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from harness.core.errors import ShapeError
from tests.kernelrun import check_workload, run_outputs

FAST = settings(max_examples=12, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
isas = st.sampled_from(["scalar", "simd"])
dims = st.integers(1, 40)


@FAST
@given(op=st.sampled_from(["add", "mul", "bias-relu"]), n=st.integers(1, 300), isa=isas,
       seed=st.integers(0, 3))
def test_elementwise(regs, op: str, n: int, isa: str, seed: int) -> None:
    check_workload(regs, f"{op}:n={n},isa={isa}", seed)


@FAST
@given(m=dims, k=st.integers(1, 70), isa=isas)
def test_gemv(regs, m: int, k: int, isa: str) -> None:
    check_workload(regs, f"gemv:m={m},k={k},isa={isa}")


@FAST
@given(rows=st.integers(1, 5), cols=st.integers(1, 300), isa=isas)
def test_softmax(regs, rows: int, cols: int, isa: str) -> None:
    check_workload(regs, f"softmax:rows={rows},cols={cols},isa={isa}")


@FAST
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 11), stride=st.integers(1, 3),
       pad=st.integers(0, 2), relu=st.booleans(), isa=isas)
def test_dwconv(regs, h: int, w: int, c: int, stride: int, pad: int, relu: bool,
                isa: str) -> None:
    assume(h + 2 * pad >= 3 and w + 2 * pad >= 3)
    check_workload(regs, f"dwconv:h={h},w={w},c={c},stride={stride},pad={pad},"
                         f"relu={int(relu)},isa={isa}")


@FAST
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 11), kh=st.integers(1, 4),
       kw=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 2),
       op=st.sampled_from(["max", "avg"]), isa=isas)
def test_pool(regs, h: int, w: int, c: int, kh: int, kw: int, stride: int, pad: int, op: str,
              isa: str) -> None:
    assume(pad < min(kh, kw) and h + 2 * pad >= kh and w + 2 * pad >= kw)
    check_workload(regs, f"pool:h={h},w={w},c={c},kh={kh},kw={kw},stride={stride},pad={pad},"
                         f"op={op},isa={isa}")


@FAST
@given(kind=st.sampled_from(["layernorm", "rmsnorm"]), rows=st.integers(1, 4),
       d=st.integers(1, 300), isa=isas)
def test_norms(regs, kind: str, rows: int, d: int, isa: str) -> None:
    check_workload(regs, f"{kind}:rows={rows},d={d},isa={isa}")


def test_layernorm_of_offset_rows(regs) -> None:
    """Rows with a large common offset: the two-pass variance must not cancel to 0."""
    w = regs.workloads.create("layernorm:rows=2,d=37")
    data = w.generate(0)
    data["x"] = (data["x"] + np.float32(1000.0)).astype(np.float32)
    got = run_outputs(regs, w, "shared", data)["y"]
    ref = w.reference(data)["y"]
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3)


def test_pool_global_average(regs) -> None:
    """The DS-CNN head: one 25x5 window (too big to unroll) over 64 channels."""
    check_workload(regs, "pool:h=25,w=5,c=64,kh=25,kw=5,op=avg")


def test_window_shapes_that_cannot_exist_are_refused(regs) -> None:
    with pytest.raises(ShapeError, match="does not fit"):
        regs.workloads.create("dwconv:h=1,w=5,pad=0")
    with pytest.raises(ShapeError, match="pad must be smaller"):
        regs.workloads.create("pool:kh=2,kw=2,pad=2")


def test_softmax_extreme_logits(regs) -> None:
    """Huge spreads: e^(x - max) underflows to 0 for most entries, never NaN or inf."""
    w = regs.workloads.create("softmax:rows=2,cols=9,isa=simd")
    x = np.array([[1e30, -1e30, 0, 5, -200, 88, 89, -87, 3],
                  [-50, -50, -50, -50, -50, -50, -50, -50, -50]], dtype=np.float32)
    got = run_outputs(regs, w, "shared", {"x": x})["y"]
    assert got[0, 0] == 1.0 and np.all(got[0, 1:] == 0.0)
    np.testing.assert_allclose(got[1], np.full(9, 1 / 9, np.float32), rtol=1e-6)


@pytest.mark.parametrize("isa", ["scalar", "simd"])
def test_softmax_nan_poisons_its_row_only(regs, isa: str) -> None:
    w = regs.workloads.create(f"softmax:rows=2,cols=6,isa={isa}")
    x = np.array([[1, 2, np.nan, 3, 4, 5], [1, 2, 3, 4, 5, 6]], dtype=np.float32)
    got = run_outputs(regs, w, "shared", {"x": x})["y"]
    assert np.isnan(got[0]).all()
    np.testing.assert_allclose(got[1], w.reference({"x": x[1:]})["y"][0], rtol=1e-6)


def test_simd_variant_declares_simd_feature(regs) -> None:
    for spec in ("add:n=8", "gemv:m=4,k=8", "softmax:rows=1,cols=8", "dwconv:h=4,w=4,c=8",
                 "pool:h=4,w=4,c=8", "layernorm:rows=1,d=8", "rmsnorm:rows=1,d=8"):
        scalar = regs.workloads.create(spec + ",isa=scalar")
        vector = regs.workloads.create(spec + ",isa=simd")
        assert all("simd128" not in d.kernel.features for d in scalar.dispatches)
        assert all("simd128" in d.kernel.features for d in vector.dispatches)
        plan = regs.strategies.create("shared").plan(vector)
        assert "simd128" in plan.requires
        assert b"\xfd" in plan.modules[0].wasm  # the SIMD opcode prefix is really used
        assert b"\xfd" not in regs.strategies.create("shared").plan(scalar).modules[0].wasm


def test_flops_and_compulsory_bytes(regs) -> None:
    def fb(spec: str) -> tuple[int, int]:
        w = regs.workloads.create(spec)
        return w.flops(), w.compulsory_bytes()

    assert fb("gemv:m=32000,k=288") == (2 * 32000 * 288, 4 * (32000 * 288 + 288 + 32000))
    assert fb("add:n=10") == (10, 4 * 30)
    assert fb("bias-relu:n=10") == (20, 4 * 30)
    # 3x3 depthwise, 8x8x4 input, stride 2, pad 1 -> 4x4x4 output; weights 36 + bias 4
    assert fb("dwconv:h=8,w=8,c=4,stride=2,pad=1") == (18 * 4 * 4 * 4, 4 * (256 + 36 + 4 + 64))
    # 2x2 stride-2 pool of 4x6x3 -> 2x3x3: four taps per output
    assert fb("pool:h=4,w=6,c=3") == (4 * 18, 4 * (72 + 18))
    assert fb("softmax:rows=2,cols=5")[1] == 4 * 20
    assert fb("layernorm:rows=2,d=5")[1] == 4 * (10 + 5 + 5 + 10)
    assert fb("rmsnorm:rows=2,d=5")[1] == 4 * (10 + 5 + 10)

"""conv2d (scalar and im2col-packed SIMD128): padding, stride, tails, in process."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.errors import ShapeError
from tests.kernelrun import run_verified
from workloads.kernels.conv2d import conv2d_reference, im2col

STRATEGIES = ("shared", "per-module")
SHAPES = [
    "h=5,w=6,cin=3,cout=5,kh=3,kw=3,pad=1",                    # padded borders, n tail
    "h=7,w=5,cin=2,cout=17,kh=2,kw=3,stride=2,pad=0",          # stride, 16 + 1 columns
    "batch=2,h=9,w=8,cin=20,cout=6,kh=3,kw=2,stride=2,pad=2,relu=0",  # looped channels
    "h=3,w=3,cin=1,cout=3,kh=5,kw=5,pad=2",                    # kernel larger than input
]


def _verify(regs, spec: str, strategy: str) -> None:
    run_verified(regs, spec, strategy)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("isa", ["scalar", "simd", "relaxed"])
@pytest.mark.parametrize("shape", SHAPES)
def test_conv2d_shapes(regs, strategy: str, isa: str, shape: str) -> None:
    _verify(regs, f"conv2d:{shape},isa={isa}", strategy)


@settings(max_examples=6, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), cin=st.integers(1, 5), cout=st.integers(1, 20),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 1),
       isa=st.sampled_from(["scalar", "simd", "relaxed"]), strategy=st.sampled_from(STRATEGIES))
def test_conv2d_random_shapes(regs, h: int, w: int, cin: int, cout: int, k: int, stride: int,
                              pad: int, isa: str, strategy: str) -> None:
    if h + 2 * pad < k or w + 2 * pad < k:
        with pytest.raises(ShapeError):
            regs.workloads.create(f"conv2d:h={h},w={w},kh={k},kw={k},pad={pad}")
        return
    _verify(regs, f"conv2d:h={h},w={w},cin={cin},cout={cout},kh={k},kw={k},stride={stride},"
                  f"pad={pad},isa={isa}", strategy)


def test_reference_matches_direct_convolution() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 4, 5, 2)).astype(np.float32)
    w = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    got = conv2d_reference(x, w, bias, stride=2, pad=1, relu=False)
    xp = np.pad(x[0].astype(np.float64), ((1, 1), (1, 1), (0, 0)))
    want = np.zeros(got.shape[1:])
    for oy in range(want.shape[0]):
        for ox in range(want.shape[1]):
            patch = xp[2 * oy:2 * oy + 3, 2 * ox:2 * ox + 2, :]
            want[oy, ox] = np.einsum("yxc,yxco->o", patch, w.astype(np.float64)) + bias
    np.testing.assert_allclose(got[0], want, rtol=1e-6, atol=1e-6)
    assert im2col(x, 3, 2, 2, 1).shape == (got.shape[1] * got.shape[2], 3 * 2 * 2)


def test_flops_and_tensors(regs) -> None:
    wl = regs.workloads.create("conv2d:batch=2,h=8,w=6,cin=3,cout=4,kh=3,kw=3,stride=2,pad=1")
    assert wl.tensor("y").shape == (2, 4, 3, 4)
    m, n, k = 2 * 4 * 3, 4, 3 * 3 * 3
    assert wl.flops() == 2 * m * n * k + m * n
    kern = wl.dispatches[0].kernel
    assert kern.features == frozenset({"simd128"}) and kern.scratch_bytes > 0
    relaxed = regs.workloads.create("conv2d:h=8,w=6,cin=3,cout=4,isa=relaxed").dispatches[0]
    assert relaxed.kernel.features == frozenset({"simd128", "relaxed-simd"})

"""kws-dscnn and resnet8: structure (dispatches, shapes, FLOPs) and outputs verified against
NumPy under the shared and per-module strategies, both ISAs, in-process on wasmtime."""

from __future__ import annotations

import numpy as np
import pytest

from tests.kernelrun import run_verified


@pytest.mark.parametrize("model", ["kws-dscnn", "resnet8"])
@pytest.mark.parametrize("isa", ["simd", "scalar"])
@pytest.mark.parametrize("strategy", ["shared", "per-module"])
def test_model_matches_numpy(regs, model: str, isa: str, strategy: str) -> None:
    run_verified(regs, f"{model}:isa={isa}", strategy)


def test_kws_dscnn_structure(regs) -> None:
    w = regs.workloads.create("kws-dscnn")
    kinds = [d.kernel.name.split("_")[0] for d in w.dispatches]
    assert kinds == ["conv2d"] + ["dwconv3x3", "gemm"] * 4 + ["avgpool", "gemm"]
    assert w.tensor("conv1").shape == (25, 5, 64)  # SAME padding at stride 2
    assert w.tensor("pw4").shape == (25, 5, 64) and w.tensor("fc").shape == (1, 12)
    x = w.generate(0)["x"]
    assert x.shape == (58, 12, 1) and np.count_nonzero(x) == 49 * 10  # zero border
    macs = 25 * 5 * 64 * 40 + 4 * (125 * 64 * 9 + 125 * 64 * 64) + 64 * 12
    assert 2 * macs < w.flops() < 2 * macs * 1.05


def test_resnet8_structure(regs) -> None:
    w = regs.workloads.create("resnet8")
    assert len(w.dispatches) == 14
    assert [d.name for d in w.dispatches if "proj" in d.name] == ["s2_proj", "s3_proj"]
    assert w.tensor("s1_add").shape == (32, 32, 16)
    assert w.tensor("s2_add").shape == (16, 16, 32)
    assert w.tensor("s3_add").shape == (8, 8, 64) and w.tensor("fc").shape == (1, 10)
    macs = (32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144 + 16 * 16 * 32 * (144 + 288 + 16)
            + 8 * 8 * 64 * (288 + 576 + 32) + 640)
    assert 2 * macs < w.flops() < 2 * macs * 1.05


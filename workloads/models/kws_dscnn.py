"""`kws-dscnn`: the MLPerf Tiny keyword-spotting DS-CNN (49x10 MFCC frame, 12 classes):

    conv 10x4 stride 2, 64 filters, SAME padding, + ReLU        49x10x1 -> 25x5x64
    4 x (depthwise 3x3 + ReLU, pointwise 1x1 conv 64 + ReLU)    25x5x64
    global average pool                                          1x1x64
    FC 12                                                        12 logits

Eleven dispatches, one module each. Pointwise convolutions are GEMMs over the 125 pixel
rows (the `gemm` kernel with fused bias + ReLU); the first conv is `conv2d` (im2col into
the packed SIMD GEMM for `isa=simd`); depthwise is `dwconv`; the pool is `pool:op=avg`.
Seeded weights (batch norm folded), see `workloads.models.cnn`.

Padding: TensorFlow's SAME for a 10x4 kernel at stride 2 on 49x10 is asymmetric (4 rows
above, 5 below, 1 column each side); the conv2d kernel pads symmetrically, so the input
tensor `x` is the MFCC frame as the front end writes it into a zero-bordered 58x12x1
buffer (features at rows 4..52, columns 1..10) and the conv runs with padding 0: exactly
SAME's arithmetic and output (25x5x64) without a padding dispatch.
Tolerance: see `workloads.models.cnn`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from harness.plugins.params import Param
from harness.plugins.workload import Tensor
from workloads.kernels.isa import ISA_PARAM
from workloads.models.cnn import Graph
from workloads.models.conv_model import ConvModelWorkload

FRAMES, COEFFS = 49, 10
PAD_TOP, PAD_BOTTOM, PAD_SIDE = 4, 5, 1
FILTERS, CLASSES, BLOCKS = 64, 12, 4


class KwsDscnnWorkload(ConvModelWorkload):
    NAME = "kws-dscnn"
    DESCRIPTION = "MLPerf Tiny keyword spotting DS-CNN (49x10 MFCC, 4 DS blocks of 64, 12 classes)"
    PARAMS: ClassVar[tuple[Param, ...]] = (ISA_PARAM,)
    TOLERANCE_DOC = __doc__ or ""

    def build(self, g: Graph) -> None:
        shape = (FRAMES + PAD_TOP + PAD_BOTTOM, COEFFS + 2 * PAD_SIDE, 1)
        x = g.input("x", shape)
        h, shape = g.conv("conv1", x, shape, FILTERS, 10, 4, stride=2, pad=0, relu=True)
        for i in range(1, BLOCKS + 1):
            h, shape = g.dwconv(f"dw{i}", h, shape)
            h = g.dense(f"pw{i}", h, shape[0] * shape[1], FILTERS, FILTERS, relu=True)
        h = g.global_avgpool("pool", h, shape)
        g.dense("fc", h, 1, FILTERS, CLASSES, relu=False, final=True)

    def generate_tensor(self, t: Tensor, rng: np.random.Generator) -> np.ndarray:
        if t.name != "x":
            return super().generate_tensor(t, rng)
        frame = np.zeros(t.shape, dtype=t.dtype)
        frame[PAD_TOP:PAD_TOP + FRAMES, PAD_SIDE:PAD_SIDE + COEFFS] = \
            rng.standard_normal((FRAMES, COEFFS, 1))
        return frame

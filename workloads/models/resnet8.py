"""`resnet8`: the MLPerf Tiny image-classification ResNet-8 (CIFAR-10, 32x32x3, 10 classes):

    conv 3x3, 16 + ReLU                                               32x32x16
    stack 1: conv 3x3 16 + ReLU, conv 3x3 16; identity shortcut; add + ReLU
    stack 2: conv 3x3 32 /2 + ReLU, conv 3x3 32; 1x1 /2 projection; add + ReLU  16x16x32
    stack 3: conv 3x3 64 /2 + ReLU, conv 3x3 64; 1x1 /2 projection; add + ReLU   8x8x64
    average pool 8x8; FC 10

Fourteen dispatches, one module each: seven 3x3 convs and two 1x1 projection convs
(`conv2d`, fused bias, ReLU where the model has one), three residual joins (the
elementwise `add-relu` kernel: z = max(x + y, 0)), the pool and the FC (`gemm` + bias).
Seeded weights (batch norm folded), see `workloads.models.cnn`.

Padding: 3x3 convs pad 1 on every side (PyTorch's convention). At stride 2 TensorFlow's
SAME pads 0 above/left and 1 below/right instead; shapes and FLOPs are identical, only
the window alignment differs, which seeded weights cannot tell apart.
Tolerance: see `workloads.models.cnn`.
"""

from __future__ import annotations

from typing import ClassVar

from harness.plugins.params import Param
from workloads.kernels.isa import ISA_PARAM
from workloads.models.cnn import Graph
from workloads.models.conv_model import ConvModelWorkload

FILTERS = (16, 32, 64)
CLASSES = 10


class Resnet8Workload(ConvModelWorkload):
    NAME = "resnet8"
    DESCRIPTION = "MLPerf Tiny ResNet-8 (32x32x3, stacks of 16/32/64, 1x1 projections, 10 classes)"
    PARAMS: ClassVar[tuple[Param, ...]] = (ISA_PARAM,)
    TOLERANCE_DOC = __doc__ or ""

    def build(self, g: Graph) -> None:
        shape = (32, 32, 3)
        x = g.input("x", shape)
        h, shape = g.conv("conv1", x, shape, FILTERS[0], 3, 3, stride=1, pad=1, relu=True)
        for s, filters in enumerate(FILTERS, start=1):
            stride = 1 if s == 1 else 2
            a, ashape = g.conv(f"s{s}_conv1", h, shape, filters, 3, 3, stride, 1, relu=True)
            b, bshape = g.conv(f"s{s}_conv2", a, ashape, filters, 3, 3, 1, 1, relu=False)
            if s == 1:
                short = h
            else:
                short, _ = g.conv(f"s{s}_proj", h, shape, filters, 1, 1, 2, 0, relu=False)
            h, shape = g.add_relu(f"s{s}_add", b, short, bshape), bshape
        h = g.global_avgpool("pool", h, shape)
        g.dense("fc", h, 1, FILTERS[-1], CLASSES, relu=False, final=True)

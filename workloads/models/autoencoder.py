"""`autoencoder`: the MLPerf Tiny anomaly-detection model (ToyADMOS), a fully connected
autoencoder 640→128→128→128→128→8→128→128→128→128→640 with ReLU after every layer but
the last (batch norm folded into the dense weights, as deployed). Ten dense dispatches, one
module each, so the 128-wide activations cross executables ten times per inference.
Weights are seeded (no trained model is fetched); the shapes are what matter for memory.
"""

from __future__ import annotations

from typing import ClassVar

from harness.plugins.params import Param
from workloads.models.mlp import MlpWorkload

SIZES = (640, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640)


class AutoencoderWorkload(MlpWorkload):
    NAME = "autoencoder"
    DESCRIPTION = "MLPerf Tiny anomaly-detection FC autoencoder (640-128x4-8-128x4-640)"
    PARAMS: ClassVar[tuple[Param, ...]] = (Param("batch", "int", 1, "frames per inference", minimum=1),)

    @property
    def widths(self) -> list[int]:
        return list(SIZES)

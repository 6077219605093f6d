"""Score-CAM exactly as pytorch-grad-cam 1.5.7 (``ScoreCAM`` + ``SemanticSegmentationTarget``).

As ``scorecam`` but the softmax is over the region's *summed* scores: kept for parity with the
reference and to show the collapse (its ``effective_channels`` note is ~1 on large regions).
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods.scorecam import channel_scores, softmax_map


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    return softmax_map(ctx, i, channel_scores(ctx, i, mean=False))

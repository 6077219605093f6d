"""Ablation-CAM exactly as pytorch-grad-cam 1.5.7 (``AblationCAM`` + ``SemanticSegmentationTarget``).

``w_k = (y - y_k) / y`` (0 where y = 0), which inverts the map when the region's score is negative
(see ``ablationcam``). The ablated value is the reference's ``AblationLayer`` rule: 0 when the
image's smallest activation at the layer is 0 (after a ReLU), else that minimum - 1e7. (The
reference takes that minimum over a batch tensor it has already modified, so its second and later
ablations of a batch go another 1e7 lower each; that drift is not reproduced — it only arises at
layers with negative activations, where the weights are meaningless anyway.)
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum
from segxai_cli.cam.methods.ablationcam import ablation_scores


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    A = ctx.acts[i]
    lo = A.flatten(1).amin(1)
    values = torch.where(lo == 0, torch.zeros_like(lo), lo - 1e7)
    yk = ablation_scores(ctx, i, values)
    y = ctx.y.float()[:, None]
    w = torch.where(y == 0, torch.zeros_like(yk), (y - yk) / torch.where(y == 0, torch.ones_like(y), y))
    return weighted_sum(w, A)

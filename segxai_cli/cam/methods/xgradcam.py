"""XGrad-CAM (Fu et al. 2020): activation-weighted gradient sum normalised by the channel's sum.

``w_k = sum_uv g A / (S_k + 1e-7)``, ``map = sum_k w_k A_k``.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.methods._channels import weighted_sum


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    S = A.sum((2, 3))
    return weighted_sum((g * A).sum((2, 3)) / (S + 1e-7), A)

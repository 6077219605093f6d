"""Seg-Grad-CAM (Vinogradova et al. 2020): channel weights = spatial mean of the gradient.

``map = sum_k mean_uv(g_k) A_k``.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.methods._channels import weighted_sum


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    return weighted_sum(g.mean((2, 3)), A)

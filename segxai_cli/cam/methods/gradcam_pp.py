"""Grad-CAM++ (Chattopadhay et al. 2018, eq. 19), with the exponential's closed form as pytorch-grad-cam.

``alpha = g² / (2 g² + S_k g³ + 1e-6)`` (0 where g = 0), ``w_k = sum_uv relu(g) alpha``,
``map = sum_k w_k A_k`` with ``S_k = sum_uv A_k``.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.methods._channels import weighted_sum


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    g2 = g * g
    S = A.sum((2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + S * g2 * g + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    w = (torch.relu(g) * alpha).sum((2, 3))
    return weighted_sum(w, A)

"""Grad-CAM element-wise (pytorch-grad-cam's GradCAMElementWise): ReLU of each channel's contribution.

``map = sum_k relu(g_k ⊙ A_k)`` — HiRes-CAM with the negative per-channel contributions dropped
before summing.
"""

from __future__ import annotations

import torch


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    return torch.relu(g * A).sum(1)

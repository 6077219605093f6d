"""Seg-HiRes-Grad-CAM (Draelos & Carin 2020; for segmentation: Hasany et al. 2024): element-wise gradient ⊙ activation, no pooling.

``map = sum_k g_k ⊙ A_k`` — faithful to the score: it is the first-order contribution of each position.
"""

from __future__ import annotations

import torch


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    return (g * A).sum(1)

"""LayerCAM (Jiang et al. 2021): positive gradients as spatial weights.

``map = sum_k relu(g_k) ⊙ A_k``.
"""

from __future__ import annotations

import torch


def compute(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    return (torch.relu(g) * A).sum(1)

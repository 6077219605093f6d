"""Seg-Eigen-CAM (Chung & Ying 2025, made for semantic segmentation): PCA of |gradient| ⊙ activation.

``X = |g| ⊙ A`` (eq. 10), ``map = (X - mean_uv X) · v`` with ``v`` its first principal axis, flipped
when ``|min| > |max|`` (eq. 13) — the paper's own sign rule, kept as the method defines it (and as
pytorch-grad-cam's SegEigenCAM does), so the map is exactly the reference's.
"""

from __future__ import annotations

from typing import Optional

import torch

from segxai_cli.cam.methods._projection import first_component, orient


def compute(A: torch.Tensor, g: torch.Tensor, notes: Optional[dict] = None, **_) -> torch.Tensor:
    return orient(first_component(g.abs() * A), None, None, notes)

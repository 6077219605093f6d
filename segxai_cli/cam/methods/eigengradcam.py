"""Eigen-Grad-CAM (pytorch-grad-cam's EigenGradCAM): first principal component of gradient ⊙ activation.

``map = (X - mean_uv X) · v`` with ``X = g ⊙ A``; oriented like Eigen-CAM (Grad-CAM agreement, then
region contrast, then extent; notes as Eigen-CAM). The reference leaves the sign to LAPACK.
"""

from __future__ import annotations

from typing import Optional

import torch

from segxai_cli.cam.methods._projection import check_sign_rule, first_component, gradcam_map, orient


def compute(A: torch.Tensor, g: torch.Tensor, region: Optional[torch.Tensor] = None,
            notes: Optional[dict] = None, eigen_sign: str = "gradcam", **_) -> torch.Tensor:
    reference = gradcam_map(A, g) if check_sign_rule(eigen_sign) == "gradcam" else None
    return orient(first_component(g * A), region if eigen_sign != "extent" else None, reference, notes)

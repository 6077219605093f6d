"""Eigen-CAM (Muhammad & Yeasin 2020): projection of the activations on their first principal component.

``map = (A - mean_uv A) · v`` with ``v`` the first principal axis of the (positions × channels)
activations. Class-agnostic except for its sign, which :func:`~._projection.orient` fixes: by
default (``eigen_sign="gradcam"``) the map must correlate positively with the layer's Grad-CAM map,
i.e. ``v · mean(g) > 0`` (the shared backward is therefore computed); ``"region"`` uses the region
contrast and ``"extent"`` Seg-Eigen-CAM's ``|min| > |max|`` flip. Each image reports the rule that
decided (notes ``sign_rule``, ``gradcam_corr``, ``region_corr``, ``extent_sign``).

pytorch-grad-cam leaves the sign to LAPACK (arbitrary) and needs a positions² SVD; the parity tests
compare up to that sign.
"""

from __future__ import annotations

from typing import Optional

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._projection import check_sign_rule, first_component, gradcam_map, orient

__all__ = ["compute", "eigencam", "first_component", "orient", "oriented"]


def eigencam(A: torch.Tensor, region: Optional[torch.Tensor], g: Optional[torch.Tensor] = None,
             notes: Optional[dict] = None) -> torch.Tensor:
    """Eigen-CAM map (B, h, w), oriented by Grad-CAM agreement when ``g`` is given, else by the region."""
    return orient(first_component(A), region, None if g is None else gradcam_map(A, g), notes)


def oriented(ctx: CamContext, i: int, proj: torch.Tensor) -> torch.Tensor:
    """``proj`` oriented by the context's ``eigen_sign`` rule (shared by the projection methods)."""
    rule = check_sign_rule(ctx.opts.get("eigen_sign", "gradcam"))
    reference = gradcam_map(ctx.acts[i], ctx.grads[i]) if rule == "gradcam" else None
    return orient(proj, ctx.region if rule != "extent" else None, reference, ctx.notes)


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    return oriented(ctx, i, first_component(ctx.acts[i]))

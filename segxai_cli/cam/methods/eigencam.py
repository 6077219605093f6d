"""Eigen-CAM (Muhammad & Yeasin 2020): projection of the activations on their first principal component.

Class-agnostic; the raw SVD sign is arbitrary, so each map is flipped to correlate positively with
the target region (:func:`orient`).

pytorch-grad-cam does a full numpy SVD of the (positions × positions) matrix, which needs 32 GiB at
a 256 × 256 decoder layer. The first right singular vector of the centred (P × K) matrix is the top
eigenvector of the K × K covariance, so we form that (one batched matmul) and take ``eigh`` of it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segxai_cli.cam.context import CamContext


def first_component(A: torch.Tensor) -> torch.Tensor:
    """Raw projection (B, h, w) of centred A (B, K, h, w) on its first principal axis (sign arbitrary)."""
    B, K, h, w = A.shape
    X = A.float().flatten(2)  # (B, K, P)
    X = X - X.mean(2, keepdim=True)
    cov = torch.bmm(X, X.transpose(1, 2)).double()  # (B, K, K)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    v = vecs[..., -1].to(X.dtype)  # (B, K)
    return torch.einsum("bk,bkp->bp", v, X).view(B, h, w)


def orient(proj: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Flip each map so that it correlates positively with the target region.

    The region is averaged down to the map's resolution. Where the correlation is zero (empty or
    full region) fall back to Seg-Eigen-CAM's rule: flip when |min| > |max|.
    """
    r = F.adaptive_avg_pool2d(region.float()[:, None], proj.shape[-2:])[:, 0]
    p = proj.flatten(1)
    rc = r.flatten(1) - r.flatten(1).mean(1, keepdim=True)
    corr = (p * rc).sum(1)
    fallback = torch.where(p.amin(1).abs() > p.amax(1).abs(), -1.0, 1.0).to(p.dtype)
    sign = torch.where(corr > 0, 1.0, torch.where(corr < 0, -1.0, fallback)).to(p.dtype)
    return proj * sign[:, None, None]


def eigencam(A: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Class-agnostic Eigen-CAM map (B, h, w), oriented towards the target region."""
    return orient(first_component(A), region)


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    return eigencam(ctx.acts[i], ctx.region)

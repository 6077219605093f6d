"""Shared by the projection methods (Eigen-CAM, Eigen-Grad-CAM, Seg-Eigen-CAM, KPCA-CAM).

A principal component has no sign of its own (``v`` and ``-v`` are equally valid), and after the
ReLU of the post-processing the sign decides which half of the map survives. :func:`orient` fixes
it by one documented rule, in this order (docs/methods.md):

1. **Grad-CAM agreement** (when the layer's gradients are given): the map must correlate positively
   with the Grad-CAM map of the same layer and target, ``Σ_k mean(g_k) A_k``. For Eigen-CAM this is
   exactly ``v · mean(g) > 0``: the component points the way that raises the target score.
2. **Region contrast**: the map must be higher, on average, inside the target region than outside.
3. **Extent** (Seg-Eigen-CAM's eq. 13): flip when ``|min| > |max|``.

A rule is used when its correlation is non-zero (|r| > 1e-6); each image reports which rule decided
and how strongly (``notes``), so a study can tell a confident orientation from a coin toss.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from segxai_cli.errors import UsageError

TOL = 1e-6
SIGN_RULES = ("gradcam", "region", "extent")


def check_sign_rule(rule: str) -> str:
    if rule not in SIGN_RULES:
        raise UsageError(f"eigen_sign must be one of {', '.join(SIGN_RULES)}; got {rule!r}")
    return rule


def first_component(X: torch.Tensor) -> torch.Tensor:
    """Raw projection (B, h, w) of centred X (B, K, h, w) on its first principal axis (sign arbitrary).

    The first right singular vector of the centred (positions × K) matrix is the top eigenvector of
    the K × K covariance: one batched matmul and a small ``eigh`` instead of pytorch-grad-cam's full
    SVD of a (positions × positions) matrix (32 GiB at 256 × 256).
    """
    B, K, h, w = X.shape
    Xf = torch.nan_to_num(X.float()).flatten(2)  # (B, K, P); NaN -> 0 as the reference does
    Xf = Xf - Xf.mean(2, keepdim=True)
    cov = torch.bmm(Xf, Xf.transpose(1, 2)).double()  # (B, K, K)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    v = vecs[..., -1].to(Xf.dtype)  # (B, K)
    return torch.einsum("bk,bkp->bp", v, Xf).view(B, h, w)


def gradcam_map(A: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The raw Grad-CAM map ``Σ_k mean(g_k) A_k`` (B, h, w): the reference of rule 1."""
    return torch.einsum("bk,bkhw->bhw", g.float().mean((2, 3)), A.float())


def _corr(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image of flattened (B, n) maps; 0 where either is constant."""
    pc, qc = p - p.mean(1, keepdim=True), q - q.mean(1, keepdim=True)
    den = pc.norm(dim=1) * qc.norm(dim=1)
    return torch.where(den > 0, (pc * qc).sum(1) / den.clamp_min(1e-30), torch.zeros_like(den))


def orient(proj: torch.Tensor, region: Optional[torch.Tensor], reference: Optional[torch.Tensor] = None,
           notes: Optional[dict] = None) -> torch.Tensor:
    """``proj`` (B, h, w) times a per-image sign chosen by the rules above.

    ``region`` (B, H, W) bool is averaged down to the map's resolution; ``reference`` is the
    Grad-CAM map (None skips rule 1). ``notes`` (optional dict) receives per image: ``sign_rule``
    (0 Grad-CAM, 1 region, 2 extent), ``gradcam_corr`` and ``region_corr`` (correlations of the
    oriented map with the Grad-CAM map and the region) and ``extent_sign`` (+1 when the oriented map
    has |max| >= |min|, i.e. agrees with Seg-Eigen-CAM's rule).
    """
    p = proj.flatten(1).float()
    zero = torch.zeros(p.shape[0], device=p.device)
    c_ref = _corr(p, reference.flatten(1).float()) if reference is not None else zero
    if region is not None:
        r = F.adaptive_avg_pool2d(region.float()[:, None], proj.shape[-2:])[:, 0]
        c_reg = _corr(p, r.flatten(1))
    else:
        c_reg = zero
    extent = torch.where(p.amin(1).abs() > p.amax(1).abs(), -1.0, 1.0)
    use_ref, use_reg = c_ref.abs() > TOL, c_reg.abs() > TOL
    sign = torch.where(use_ref, c_ref.sign(), torch.where(use_reg, c_reg.sign(), extent))
    if notes is not None:
        notes["sign_rule"] = torch.where(use_ref, 0.0, torch.where(use_reg, 1.0, 2.0))
        notes["gradcam_corr"] = sign * c_ref
        notes["region_corr"] = sign * c_reg
        notes["extent_sign"] = sign * extent
    return proj * sign.to(proj.dtype)[:, None, None]

"""KPCA-CAM (Karmani et al. 2024): Eigen-CAM with kernel PCA, as pytorch-grad-cam's KPCA_CAM.

Positions are samples, channels features, centred per channel; sigmoid kernel
``k(a, b) = tanh(gamma a·b + coef0)`` (``kpca_gamma`` default 1/K, ``kpca_coef0`` 1), the kernel
matrix centred, ``v, λ`` its top eigenpair; ``map = K_c v / sqrt(λ)`` — scikit-learn's
``KernelPCA(n_components=1).fit_transform``, batched in float64 on the device.

The kernel matrix is positions²: beyond ``kpca_fit`` positions (1024) it is fitted on a regular
subsample of that many positions and every position is projected with the fitted centring
(scikit-learn's ``transform``; exact on the fitted positions). The reference fits on all positions,
which at a 256 × 256 layer is a 32 GiB matrix. Sign: as Eigen-CAM's (``eigen_sign``), not
scikit-learn's largest-entry-positive convention.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods.eigencam import oriented

_BLOCK_BYTES = 256 * 2**20  # bound on the (images × positions × fitted) projection block


def kernel_component(A: torch.Tensor, fit: int = 1024, gamma: float | None = None, coef0: float = 1.0) -> torch.Tensor:
    """First kernel principal component (B, h, w) of A (B, K, h, w), sign as scikit-learn's."""
    B, K, h, w = A.shape
    P = h * w
    X = torch.nan_to_num(A.double()).flatten(2).transpose(1, 2)  # (B, P, K)
    X = X - X.mean(1, keepdim=True)
    gamma = 1.0 / K if gamma is None else float(gamma)
    idx = torch.linspace(0, P - 1, fit, device=A.device).round().long() if P > fit else None
    Xf = X if idx is None else X[:, idx]
    Kf = torch.tanh(gamma * torch.bmm(Xf, Xf.transpose(1, 2)) + coef0)  # (B, S, S)
    col, total = Kf.mean(1, keepdim=True), Kf.mean((1, 2), keepdim=True)
    vals, vecs = torch.linalg.eigh(Kf - col - Kf.mean(2, keepdim=True) + total)
    lam, v = vals[:, -1], vecs[..., -1]  # (B,), (B, S)
    lam = torch.where(lam > 1e-10 * Kf.shape[1], lam, torch.zeros_like(lam))  # rounding noise of a constant kernel
    top = v.abs().argmax(1, keepdim=True)
    v = v * torch.gather(v, 1, top).sign()  # scikit-learn's svd_flip: the largest entry positive
    if idx is None:
        proj = v * lam.clamp_min(0).sqrt()[:, None]
    else:
        coef = torch.where(lam > 0, lam.clamp_min(1e-300).rsqrt(), torch.zeros_like(lam))[:, None, None]
        step = max(1, _BLOCK_BYTES // (8 * B * Xf.shape[1]))
        parts = []
        for s in range(0, P, step):
            Kn = torch.tanh(gamma * torch.bmm(X[:, s:s + step], Xf.transpose(1, 2)) + coef0)  # (B, n, S)
            Kn = Kn - col - Kn.mean(2, keepdim=True) + total
            parts.append(torch.bmm(Kn, v[..., None] * coef)[..., 0])
        proj = torch.cat(parts, 1)
    return proj.view(B, h, w).to(A.dtype)


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    o = ctx.opts
    proj = kernel_component(ctx.acts[i], int(o.get("kpca_fit", 1024)), o.get("kpca_gamma"), float(o.get("kpca_coef0", 1.0)))
    return oriented(ctx, i, proj)

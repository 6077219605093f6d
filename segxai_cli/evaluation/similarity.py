"""How alike two saliency maps are: SSIM and HOG similarity (Adebayo et al. 2018's measures), in torch.

Both take maps (B, H, W) in [0, 1] (the study's per-tile normalised maps; they are non-negative, so
they already are the "absolute" maps the paper compares) and return one value per image (B,).

- :func:`ssim` -- structural similarity (Wang et al. 2004) with the usual settings (those of
  scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=1)``): Gaussian window sigma 1.5 truncated at 3.5 sigma (11 taps), symmetric padding,
  ``C1 = 0.01²``, ``C2 = 0.03²``; the SSIM image is averaged over ``region``.
- :func:`hog_similarity` -- Pearson correlation of the two maps' HOG descriptors (Dalal & Triggs
  2005 as in scikit-image's ``hog``: centred gradients, 9 unsigned orientation bins with hard
  assignment, 8 × 8-pixel cells, 3 × 3-cell blocks, L2-Hys normalisation).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
HOG_BINS, HOG_CELL, HOG_BLOCK = 9, 8, 3


def _symmetric_pad(x: torch.Tensor, r: int) -> torch.Tensor:
    """Half-sample symmetric padding (``d c b a | a b c d``, scipy's ``reflect``) of the last two dims."""
    for dim in (-1, -2):
        n = x.shape[dim]
        j = torch.arange(-r, n + r, device=x.device) % (2 * n)
        x = x.index_select(dim, torch.where(j < n, j, 2 * n - 1 - j))
    return x


def _gauss_filter(x: torch.Tensor, sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE) -> torch.Tensor:
    """Separable Gaussian filter of (N, H, W) with symmetric padding (like ``scipy.ndimage.gaussian_filter``)."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype)
    y = _symmetric_pad(x[:, None], r)
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    return F.conv2d(y, k.view(1, 1, -1, 1))[:, 0]


def ssim(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of (B, H, W) maps over ``region`` (B,); 1 for identical maps."""
    a, b = a.double(), b.double()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = _gauss_filter(a), _gauss_filter(b)
    va = _gauss_filter(a * a) - mu_a ** 2
    vb = _gauss_filter(b * b) - mu_b ** 2
    cov = _gauss_filter(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (va + vb + c2))
    m = torch.ones_like(s, dtype=torch.bool) if region is None else region
    n = m.flatten(1).sum(1)
    out = (s * m).flatten(1).sum(1) / n.clamp_min(1)
    return torch.where(n > 0, out, torch.full_like(out, math.nan)).float()


def hog(maps: torch.Tensor, cell: int = HOG_CELL, block: int = HOG_BLOCK, bins: int = HOG_BINS) -> torch.Tensor:
    """HOG descriptors (B, n_features) of (B, H, W) maps (see the module docstring)."""
    x = maps.double()
    B, H, W = x.shape
    gr, gc = torch.zeros_like(x), torch.zeros_like(x)
    gr[:, 1:-1] = x[:, 2:] - x[:, :-2]
    gc[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    mag = torch.hypot(gr, gc)
    ang = torch.rad2deg(torch.atan2(gr, gc)) % 180.0
    idx = torch.clamp((ang / (180.0 / bins)).floor().long(), 0, bins - 1)
    ch, cw = H // cell, W // cell
    if ch < block or cw < block:
        raise ValueError(f"HOG needs at least {block * cell} x {block * cell} pixels, got {H} x {W}")
    mag, idx = mag[:, : ch * cell, : cw * cell], idx[:, : ch * cell, : cw * cell]
    onehot = F.one_hot(idx, bins).double() * mag[..., None]  # (B, H, W, bins)
    hist = onehot.view(B, ch, cell, cw, cell, bins).sum((2, 4)) / (cell * cell)  # (B, ch, cw, bins)
    nb_r, nb_c = ch - block + 1, cw - block + 1
    blocks = hist.unfold(1, block, 1).unfold(2, block, 1)  # (B, nb_r, nb_c, bins, block, block)
    blocks = blocks.permute(0, 1, 2, 4, 5, 3).reshape(B, nb_r, nb_c, -1)
    eps = 1e-5
    v = blocks / torch.sqrt((blocks ** 2).sum(-1, keepdim=True) + eps ** 2)
    v = torch.clamp(v, max=0.2)
    v = v / torch.sqrt((v ** 2).sum(-1, keepdim=True) + eps ** 2)
    return v.reshape(B, -1)


def hog_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the HOG descriptors of two (B, H, W) maps (B,); NaN if one is constant."""
    ha, hb = hog(a), hog(b)
    ha, hb = ha - ha.mean(1, keepdim=True), hb - hb.mean(1, keepdim=True)
    den = torch.sqrt((ha * ha).sum(1) * (hb * hb).sum(1))
    r = (ha * hb).sum(1) / den.clamp_min(1e-300)
    return torch.where(den > 1e-12, r, torch.full_like(r, math.nan)).float()

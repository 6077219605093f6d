"""Reduced inputs for the M1/M2/M3 evaluation (the M1/M2/M3 protocol of "Semantic segmentation XAI evaluation"; docs/study.md).

A saliency map S (per-tile min-max normalised, in [0, 1]) is binarised at threshold t:
``Phi = S >= t``. With T the target-class pixels (ground truth, else the original prediction):

====  =====================  =============  ======================================
mode  name                   pixels kept    faithful explanation
====  =====================  =============  ======================================
M1    background only        ``~Phi``       large confidence drop
M2    highlighted only       ``Phi``        small confidence drop
M3    highlighted + target   ``Phi ∪ T``    low entropy (the model is certain)
====  =====================  =============  ======================================

Every other pixel is replaced by a fill value, in the model's normalised input space:

- ``mean`` (default): 0, i.e. the band mean;
- ``zero``: the normalised value of a raw 0 pixel, ``-mean / std`` per band;
- ``blur``: a Gaussian-blurred copy of the tile (sigma ``blur_sigma`` pixels), so the removed pixels
  keep the local colour but lose their detail.

Pixels outside the valid data (nodata) are always kept as they are (they already hold the band mean),
so the fill never invents data there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from segxai_cli.errors import SegxaiError, UsageError
from segxai_cli.evaluation.config import DEFAULT_BLUR_SIGMA, FILLS, MODES, check_modes
from segxai_cli.raster.stats import BandStats


def check_threshold(t: float) -> float:
    t = float(t)
    if not (0.0 <= t <= 1.0) or math.isnan(t):
        raise UsageError(f"threshold {t:g} is outside [0, 1] (saliency maps are min-max normalised to [0, 1])")
    return t


def binarize(saliency: torch.Tensor, threshold: float) -> torch.Tensor:
    """``Phi = S >= t`` (B, H, W) bool."""
    return saliency >= check_threshold(threshold)


def keep_mask(mode: str, phi: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixels kept from the original image in ``mode`` (B, H, W) bool."""
    if mode == "M1":
        return ~phi
    if mode == "M2":
        return phi.clone()
    if mode == "M3":
        return phi | target
    raise SegxaiError(f"unknown evaluation mode {mode!r}; valid: {', '.join(MODES)}")


def gaussian_blur(images: torch.Tensor, sigma: float = DEFAULT_BLUR_SIGMA) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) with reflection padding (kernel radius 3 sigma)."""
    if sigma <= 0:
        return images.clone()
    radius = max(1, int(math.ceil(3 * sigma)))
    H, W = images.shape[-2:]
    radius = min(radius, H - 1, W - 1) if min(H, W) > 1 else 0
    if radius == 0:
        return images.clone()
    x = torch.arange(-radius, radius + 1, dtype=torch.float32, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).to(images.dtype)
    C = images.shape[1]
    out = F.pad(images, (radius, radius, 0, 0), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(C, 1, 1, -1), groups=C)
    out = F.pad(out, (0, 0, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(C, 1, -1, 1), groups=C)
    return out


def fill_values(
    images: torch.Tensor, fill: str = "mean", stats: BandStats | None = None, blur_sigma: float = DEFAULT_BLUR_SIGMA
) -> torch.Tensor:
    """The replacement image (B, C, H, W) for removed pixels, in normalised space."""
    if fill == "mean":
        return torch.zeros_like(images)
    if fill == "zero":
        if stats is None:
            raise SegxaiError("--fill zero needs the model's band statistics (mean/std)")
        mean, std = (torch.as_tensor(a, device=images.device, dtype=images.dtype) for a in stats.as_arrays())
        if mean.numel() != images.shape[1]:
            raise SegxaiError(f"band statistics have {mean.numel()} bands, images have {images.shape[1]}")
        return (-mean / std).view(1, -1, 1, 1).expand_as(images).contiguous()
    if fill == "blur":
        return gaussian_blur(images, blur_sigma)
    raise SegxaiError(f"unknown fill {fill!r}; valid: {', '.join(FILLS)}")


def apply_keep(
    images: torch.Tensor, fill: torch.Tensor, keep: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Blend: ``keep * x + (1 - keep) * fill``. ``keep`` is bool or soft in [0, 1], (B, H, W).

    Invalid (nodata) pixels always keep the original value.
    """
    w = keep.to(images.dtype)
    if valid is not None:
        w = torch.where(valid, w, torch.ones_like(w))
    w = w[:, None]
    return images * w + fill * (1 - w)


def reduced_inputs(
    images: torch.Tensor,
    saliency: torch.Tensor,
    target: torch.Tensor,
    threshold: float,
    modes: Sequence[str] = MODES,
    fill: str = "mean",
    stats: BandStats | None = None,
    valid: torch.Tensor | None = None,
    blur_sigma: float = DEFAULT_BLUR_SIGMA,
) -> dict[str, torch.Tensor]:
    """The reduced images for each mode at one threshold: mode -> (B, C, H, W)."""
    phi = binarize(saliency, threshold)
    fv = fill_values(images, fill, stats, blur_sigma)
    return {m: apply_keep(images, fv, keep_mask(m, phi, target), valid) for m in check_modes(modes)}

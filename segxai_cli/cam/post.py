"""Post-processing shared by all methods: ReLU, resize to the tile, per-image min-max, layer averaging.

Follows the pytorch-grad-cam convention (methods.md). Bilinear resize and min-max commute, so we
resize first and normalise once; everything is batched on the device.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

EPS = 1e-7
REL_EPS = 1e-6  # a map whose range is below this fraction of its magnitude is float noise: constant


def minmax(maps: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Per-image min-max to [0, 1] of (B, H, W) maps; a constant map becomes all zeros.

    pgc divides by ``range + 1e-7``: an absolute epsilon, which squashes maps whose raw range is
    below ~1e-6 (e.g. activations of ~1e-9 behind an untrained BatchNorm) to a maximum far below 1.
    Here the epsilon is relative to the map's magnitude, so the result is scale-invariant; a map
    whose range is below ``eps`` times its magnitude counts as constant.
    """
    flat = maps.flatten(1)
    lo = flat.amin(1).view(-1, 1, 1)
    hi = flat.amax(1).view(-1, 1, 1)
    scale = torch.maximum(hi.abs(), lo.abs())
    rng = hi - lo
    return torch.where(rng > max(eps, REL_EPS) * scale, (maps - lo) / torch.where(rng > 0, rng, torch.ones_like(rng)),
                       torch.zeros_like(maps))


def resize(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (align_corners=False, no antialias, like cv2.INTER_LINEAR) of (B, h, w)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


def postprocess(cam: torch.Tensor, size: tuple[int, int], normalize: bool = True) -> torch.Tensor:
    """ReLU -> resize to ``size`` -> (optional) per-image min-max. ``cam`` is (B, h, w)."""
    out = resize(torch.relu(cam.float()), size)
    return minmax(out) if normalize else out


def aggregate(per_layer: Sequence[torch.Tensor], normalize: bool = True) -> torch.Tensor:
    """Average already post-processed per-layer maps, then min-max again (Mullan & Sonka 'Adapted').

    With one layer too, as pytorch-grad-cam does: the second min-max is a no-op unless the raw
    map's range is below ~1e-4, where the eps 1e-7 of the first one left it short of 1 (a Score-CAM
    whose softmax picked an all-zero channel); skipping it made our maps differ from the
    reference's there (measured 2.4e-3 … 1.0, the same in float64: not rounding noise).
    """
    if len(per_layer) == 1 and not normalize:
        return per_layer[0]
    mean = torch.stack(list(per_layer)).mean(0)
    return minmax(mean) if normalize else mean

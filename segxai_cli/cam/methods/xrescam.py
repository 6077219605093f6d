"""Seg-XRes-CAM (Hasany et al. 2023): gradients pooled over a window, nearest-upsampled back, times A.

``map = sum_k pool(g)_k ⊙ A_k``; ``xres_pool`` (2) sets the window and ``xres_mode`` avg|max the
pooling. ``ceil_mode`` keeps a partial last window so odd sizes are covered; avg ignores the padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segxai_cli.errors import UsageError


def compute(A: torch.Tensor, g: torch.Tensor, xres_pool: int = 2, xres_mode: str = "avg", **_) -> torch.Tensor:
    h, w = g.shape[-2:]
    if xres_mode == "max":
        gp = F.max_pool2d(g, xres_pool, xres_pool, ceil_mode=True)
    elif xres_mode == "avg":
        gp = F.avg_pool2d(g, xres_pool, xres_pool, ceil_mode=True, count_include_pad=False)
    else:
        raise UsageError(f"xres_mode must be 'avg' or 'max', got {xres_mode!r}")
    gp = gp.repeat_interleave(xres_pool, 2).repeat_interleave(xres_pool, 3)[..., :h, :w]
    return (gp * A).sum(1)

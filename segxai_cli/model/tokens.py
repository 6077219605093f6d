"""Token models: a (B, N, C) sequence of a ViT block or a SegFormer stage as (B, C, h, w) maps.

pytorch-grad-cam asks the user for a ``reshape_transform``; segxai does it for every model it
loads: the patch tokens are the last ``h * w`` of the sequence (class and register tokens come
first and are dropped), laid out row by row on a grid with the input's aspect ratio.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from segxai_cli.errors import UsageError

MAX_PREFIX = 16  # class + register tokens (DINOv2 with registers has 5)


def token_grid(n_tokens: int, size: tuple[int, int], prefix: Optional[int] = None) -> tuple[int, int, int]:
    """(prefix, h, w): the fewest leading tokens leaving an h × w grid with the input's aspect ratio."""
    H, W = int(size[0]), int(size[1])
    candidates = [prefix] if prefix is not None else range(0, min(MAX_PREFIX, n_tokens - 1) + 1)
    for p in candidates:
        n = n_tokens - p
        if n <= 0:
            continue
        h = round(math.sqrt(n * H / W))
        for hh in (h, h - 1, h + 1):
            if hh > 0 and n % hh == 0 and (n // hh) * H == hh * W:
                return p, hh, n // hh
    raise UsageError(
        f"a layer outputs {n_tokens} tokens, which do not form a patch grid of the {H}x{W} input; "
        "pick a layer with (B, C, h, w) feature maps (see `segxai layers`)"
    )


def tokens_to_maps(t: torch.Tensor, size: tuple[int, int], prefix: Optional[int] = None) -> torch.Tensor:
    """(B, N, C) tokens → (B, C, h, w), as pgc's ``reshape_transform`` for ViT models does."""
    B, N, C = t.shape
    p, h, w = token_grid(N, size, prefix)
    return t[:, p:, :].reshape(B, h, w, C).permute(0, 3, 1, 2)

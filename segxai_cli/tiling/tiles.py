"""The one tile rule: pad a window to the model's tile, then normalise it — for explain, evaluate and train.

1. **Pad.** A window smaller than the tile (a scene smaller than a tile) is padded to ``tile × tile``
   by reflection (replicate when the window is too small to reflect), *together with its validity*:
   the padding holds mirrored context the model may look at, but it is never part of the window
   (``inside``), so it is never explained, evaluated or trained on; outputs are cropped back.
2. **Normalise.** ``where(valid, (x - mean) / std, 0)`` per band with the checkpoint's statistics:
   invalid pixels (nodata, NaN, ±Inf — see :mod:`segxai_cli.raster.reader`) become 0, the band
   mean, and cannot leak into the convolutions. (Multiplying by the mask instead would turn
   ``NaN × 0`` into NaN.)

Padding runs on the CPU where windows are read; normalisation runs wherever the batch is (on the
GPU in the explain pipeline), so the same functions serve every command.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from segxai_cli.raster.stats import BandStats


def pad_tile(data: np.ndarray, valid: np.ndarray, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(bands, h, w) float32 data and (h, w) validity → (bands, tile, tile) and (tile, tile) tensors.

    The returned validity covers the padding too (mirrored from the window), for normalisation.
    """
    x = torch.from_numpy(np.ascontiguousarray(data))
    v = torch.from_numpy(np.ascontiguousarray(valid))
    h, w = v.shape
    ph, pw = tile - h, tile - w
    if ph < 0 or pw < 0:
        raise ValueError(f"window {h}x{w} is larger than the tile {tile}")
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]
        v = F.pad(v[None, None].to(torch.float32), (0, pw, 0, ph), mode=mode)[0, 0] > 0.5
    return x, v


def inside_mask(sizes: Sequence[tuple[int, int]], tile: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, tile, tile) bool: True on the window's own pixels, False on its padding."""
    out = torch.zeros((len(sizes), tile, tile), dtype=torch.bool, device=device)
    for i, (h, w) in enumerate(sizes):
        out[i, :h, :w] = True
    return out


def normalize(images: torch.Tensor, valid: torch.Tensor, stats: BandStats) -> torch.Tensor:
    """``where(valid, (x - mean) / std, 0)`` for (B, C, H, W) images and (B, H, W) validity."""
    mean = torch.as_tensor(stats.mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std = torch.as_tensor(stats.std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    if mean.shape[1] != images.shape[1]:
        raise ValueError(f"band statistics have {mean.shape[1]} bands, images have {images.shape[1]}")
    x = (images.to(torch.float32) - mean) / std
    return torch.where(valid[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))


def prepare_tiles(windows_data: Sequence[tuple[np.ndarray, np.ndarray]], stats: BandStats, tile: int,
                  device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Read windows ``[(data, valid), …]`` → normalised images (B, C, T, T) and validity (B, T, T)
    of the windows' own pixels (padding excluded), on ``device``."""
    padded = [pad_tile(d, v, tile) for d, v in windows_data]
    images = torch.stack([x for x, _ in padded]).to(device, non_blocking=True)
    valid = torch.stack([v for _, v in padded]).to(device, non_blocking=True)
    images = normalize(images, valid, stats)
    sizes = [v.shape for _, v in windows_data]
    return images, valid & inside_mask(sizes, tile, device)

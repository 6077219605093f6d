"""Reading a batch of windows into one normalised device tensor, padded to the model's tile size.

Windows smaller than the tile (scenes smaller than a tile) are reflection-padded, so the model
always sees its native size and sizes divisible by the encoder's stride; callers crop the outputs
back with :attr:`TileBatch.sizes`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import rasterio
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from segxai_cli.raster.reader import BandStats, read_window


@dataclass
class TileBatch:
    """A batch of tiles: images (B, C, T, T) normalised, valid (B, T, T) bool, original window sizes."""

    windows: list[Window]
    images: torch.Tensor
    valid: torch.Tensor
    sizes: list[tuple[int, int]]  # (h, w) of each window before padding


def read_tiles(
    src: rasterio.DatasetReader,
    windows: Sequence[Window],
    bidx: Sequence[int],
    stats: BandStats,
    tile: int,
    device: torch.device | str = "cpu",
) -> TileBatch:
    """Read, normalise (per-band stats; nodata → band mean) and pad ``windows`` to ``tile`` pixels."""
    mean, std = (torch.as_tensor(a) for a in stats.as_arrays())
    imgs, valids, sizes = [], [], []
    for win in windows:
        data, valid = read_window(src, win, bidx)
        x = torch.from_numpy(data)
        v = torch.from_numpy(valid)
        h, w = v.shape
        sizes.append((h, w))
        if h < tile or w < tile:
            x, v = _pad(x, v, tile)
        imgs.append(x)
        valids.append(v)
    images = torch.stack(imgs).to(device, non_blocking=True)
    valid = torch.stack(valids).to(device, non_blocking=True)
    mean = mean.to(device)[None, :, None, None]
    std = std.to(device)[None, :, None, None]
    images = ((images - mean) / std) * valid[:, None]
    return TileBatch(list(windows), images, valid, sizes)


def _pad(x: torch.Tensor, v: torch.Tensor, tile: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, w = v.shape
    ph, pw = tile - h, tile - w
    # Reflection needs pad < size; fall back to replicate for tiny scenes.
    mode = "reflect" if ph < h and pw < w else "replicate"
    x = F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]
    v = F.pad(v[None, None].float(), (0, pw, 0, ph), mode=mode)[0, 0] > 0.5
    return x, v


def pad_multiple(size: int, multiple: int = 32) -> int:
    """The smallest multiple of ``multiple`` ≥ ``size`` (encoders downsample by up to 32)."""
    return int(np.ceil(size / multiple) * multiple)

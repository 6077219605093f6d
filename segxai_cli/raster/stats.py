"""Per-band normalisation statistics: what they are and how they are measured on scenes.

Statistics are computed at training (or by ``segxai import``) over the *valid* pixels of the scenes,
in the scenes' raw units, and stored in the checkpoint — never a fixed ``/255``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from segxai_cli.errors import InputError

if TYPE_CHECKING:  # imported lazily: BandStats is part of a checkpoint's meta, read on light paths too
    import numpy as np
    from rasterio.windows import Window


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation used to normalise the model's input (raw units)."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def as_arrays(self) -> tuple["np.ndarray", "np.ndarray"]:
        import numpy as np

        return np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "BandStats":
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


def grid_windows(width: int, height: int, block: int) -> list["Window"]:
    """Non-overlapping windows of ``block`` pixels covering the raster (edge windows are smaller)."""
    from rasterio.windows import Window

    return [
        Window(c, r, min(block, width - c), min(block, height - r))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]


def compute_band_stats(sources: Iterable, bidx: Sequence[int], *, max_pixels: int = 4_000_000,
                       block: int = 512) -> BandStats:
    """Per-band mean/std over the valid pixels of one or more rasters, ignoring nodata.

    Streams windows on a regular grid; for big scenes it subsamples windows evenly so that about
    ``max_pixels`` pixels per raster are read. Sums are accumulated in float64. A constant band
    gets std 1 (never a division by zero).
    """
    import numpy as np

    from segxai_cli.raster.reader import check_bands, open_raster_quiet, read_window

    n = 0
    s = np.zeros(len(bidx), np.float64)
    s2 = np.zeros(len(bidx), np.float64)
    for source in sources:
        with open_raster_quiet(source) as src:
            check_bands(src, bidx)
            windows = grid_windows(src.width, src.height, block)
            step = max(1, math.ceil(len(windows) * block * block / max_pixels))
            for win in windows[::step]:
                data, valid = read_window(src, win, bidx)
                vals = data[:, valid].astype(np.float64)
                n += vals.shape[1]
                s += vals.sum(axis=1)
                s2 += (vals**2).sum(axis=1)
    if n == 0:
        raise InputError("no valid (non-nodata) pixels to compute band statistics from")
    mean = s / n
    std = np.sqrt(np.maximum(s2 / n - mean**2, 0.0))
    std = np.where(std < 1e-6, 1.0, std)
    return BandStats(tuple(mean.tolist()), tuple(std.tolist()))

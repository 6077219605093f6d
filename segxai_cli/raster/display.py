"""Small pictures of big rasters: previews read from overviews, display stretches, heatmap blends.

What analysts look at (quicklooks, the QGIS project's input stretch, the HTML report) is computed at
a preview size of a few hundred pixels. :func:`read_preview` reads it from the coarsest overview that
is still at least that large (COG outputs always have overviews), so a 10 000 × 10 000 scene is never
held in memory at full resolution; a raster without overviews is decimated by GDAL block by block.

Stretches are for display only: the data written to the COGs stays unstretched in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from segxai_cli.raster.source import RasterSource, SourceLike
from segxai_cli.raster.style import HEATMAP_STOPS

CUMULATIVE_CUT = (0.02, 0.98)  # QGIS's default contrast enhancement for RGB layers
DISPLAY_PERCENTILES = (2.0, 98.0)  # saliency display stretch over the non-zero values
NODATA_RGB = (255, 255, 255)


@dataclass
class Preview:
    """A decimated read: ``data`` (bands, h, w) float32, ``valid`` (h, w) bool, and where it came from."""

    data: np.ndarray
    valid: np.ndarray
    overview_level: int | None  # None: read from the full resolution (the raster has no usable overview)
    factor: float  # full-resolution pixels per preview pixel


def preview_shape(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(h, w) of a preview at most ``max_side`` pixels on its long side (never upsampled)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_preview(location: SourceLike, bands: Sequence[int] | None = None, max_side: int = 512,
                 resampling: str = "average") -> Preview:
    """Read ``bands`` (1-based; default all) at preview size from the best overview."""
    import rasterio
    from rasterio.enums import Resampling

    gdal_path = RasterSource.of(location).gdal_path
    with rasterio.open(gdal_path) as src:
        bands = list(bands or range(1, src.count + 1))
        out_h, out_w = preview_shape(src.width, src.height, max_side)
        factors = src.overviews(bands[0])
        width, height = src.width, src.height
    level = None
    for i, f in enumerate(factors):  # coarsest overview still at least the preview's size
        if math.ceil(width / f) >= out_w and math.ceil(height / f) >= out_h:
            level = i
    kw = {} if level is None else {"overview_level": level}
    with rasterio.open(gdal_path, **kw) as src:
        data = src.read(bands, out_shape=(len(bands), out_h, out_w), resampling=Resampling[resampling])
        valid = src.dataset_mask(out_shape=(out_h, out_w), resampling=Resampling.nearest) > 0
    data = data.astype(np.float32, copy=False)
    valid &= np.isfinite(data).all(axis=0)
    return Preview(data, valid, level, width / out_w)


def cumulative_cut(data: np.ndarray, valid: np.ndarray, cut: tuple[float, float] = CUMULATIVE_CUT) -> list[tuple[float, float]]:
    """Per band (lo, hi) at the ``cut`` quantiles of the valid pixels (QGIS's cumulative count cut)."""
    out = []
    for band in data:
        v = band[valid]
        if v.size == 0:
            out.append((0.0, 1.0))
            continue
        lo, hi = (float(q) for q in np.quantile(v, cut))
        out.append((lo, hi if hi > lo else lo + 1.0))
    return out


def to_rgb8(data: np.ndarray, valid: np.ndarray, cuts: Sequence[tuple[float, float]]) -> np.ndarray:
    """(h, w, 3) uint8 from 1 or 3+ bands stretched linearly between each band's (lo, hi)."""
    # NaN only where ~valid (painted over below); made 0 so the uint8 cast is defined
    chans = [np.nan_to_num(np.clip((b - lo) / (hi - lo), 0, 1), nan=0.0) for b, (lo, hi) in zip(data[:3], cuts)]
    if len(chans) < 3:
        chans = [chans[0]] * 3
    rgb = (np.stack(chans, -1) * 255 + 0.5).astype(np.uint8)
    rgb[~valid] = NODATA_RGB
    return rgb


def display_range(values: np.ndarray, valid: np.ndarray, pct: tuple[float, float] = DISPLAY_PERCENTILES) -> tuple[float, float]:
    """(lo, hi) percentiles of the non-zero valid values: sparse maps stay visible, the data is untouched."""
    v = values[valid & (values > 0)]
    if v.size == 0:
        return 0.0, 1.0
    lo, hi = (float(x) for x in np.percentile(v, pct))
    if hi <= lo:
        lo, hi = (0.0, hi) if hi > 0 else (0.0, 1.0)
    return lo, hi


def heat_rgba(x01: np.ndarray) -> np.ndarray:
    """(h, w, 4) float in [0, 1]: the heatmap ramp of the QGIS styles (transparent at 0)."""
    pos = [p for p, _, _ in HEATMAP_STOPS]
    rgba = [[int(c[i:i + 2], 16) / 255 for i in (1, 3, 5)] + [a / 255] for _, c, a in HEATMAP_STOPS]
    x = np.clip(x01, 0, 1)
    return np.stack([np.interp(x, pos, [c[k] for c in rgba]) for k in range(4)], -1).astype(np.float32)


def blend_heat(rgb: np.ndarray, values: np.ndarray, valid: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The heatmap over ``rgb`` with the ramp's own alpha; ``values`` stretched to [lo, hi] for display."""
    heat = heat_rgba((values - lo) / (hi - lo) if hi > lo else values)
    alpha = heat[..., 3:] * valid[..., None]
    out = rgb.astype(np.float32) / 255 * (1 - alpha) + heat[..., :3] * alpha
    return (out * 255 + 0.5).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it (a one-pixel contour)."""
    m = np.pad(mask.astype(bool), 1, mode="edge")
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask.astype(bool) & ~inner


def paint(rgb: np.ndarray, where: np.ndarray, colour: Sequence[int], alpha: float = 1.0) -> np.ndarray:
    """``rgb`` with ``colour`` blended in at ``where`` (a copy)."""
    out = rgb.astype(np.float32)
    out[where] = out[where] * (1 - alpha) + np.asarray(colour[:3], np.float32) * alpha
    return (out + 0.5).astype(np.uint8)

"""Opening and validating input rasters, windowed reads with masks, band statistics.

Everything reads by window: memory never grows with the scene size. Band indexes are 1-based, as in
GDAL and rio (``-b/--bidx``). Validity comes from GDAL's dataset mask, so nodata values, internal
mask bands and alpha bands are all honoured the same way.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from segxai_cli.errors import InputError

GEOTIFF_DRIVERS = {"GTiff", "COG"}


class NoCRSWarning(UserWarning):
    """The raster has no CRS: outputs are written in the same pixel grid but cannot be placed on a map."""


@dataclass(frozen=True)
class RasterInfo:
    """What the pipeline needs to know about an input scene (no pixel data)."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: object | None  # rasterio CRS
    transform: object  # affine.Affine
    nodata: float | None
    block_shape: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)


def open_raster(path: str | Path, *, require_crs: bool = False) -> rasterio.DatasetReader:
    """Open a GeoTIFF for reading, turning GDAL's failures into one-line :class:`InputError`s.

    A raster without a CRS is accepted with a :class:`NoCRSWarning` (its pixel grid is still copied to
    the outputs) unless ``require_crs`` is set.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a GeoTIFF")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{path}: not a readable GeoTIFF ({_first_line(exc)})") from None
    if src.driver not in GEOTIFF_DRIVERS:
        src.close()
        raise InputError(f"{path}: is a {src.driver} file, not a GeoTIFF")
    if src.crs is None:
        if require_crs:
            src.close()
            raise InputError(f"{path}: has no CRS (coordinate reference system)")
        warnings.warn(f"{path}: has no CRS; outputs keep its pixel grid but no map position", NoCRSWarning, stacklevel=2)
    return src


def raster_info(src: rasterio.DatasetReader) -> RasterInfo:
    block = src.block_shapes[0] if src.block_shapes else (256, 256)
    return RasterInfo(
        path=Path(src.name),
        width=src.width,
        height=src.height,
        count=src.count,
        dtype=src.dtypes[0],
        crs=src.crs,
        transform=src.transform,
        nodata=src.nodata,
        block_shape=tuple(block),
    )


def check_bands(src: rasterio.DatasetReader, bidx: Sequence[int]) -> list[int]:
    """Validate 1-based band indexes against the raster; return them as a list."""
    bidx = [int(b) for b in bidx]
    if not bidx:
        raise InputError(f"{src.name}: no bands selected")
    bad = [b for b in bidx if b < 1 or b > src.count]
    if bad:
        raise InputError(
            f"{src.name}: has {src.count} band(s); band index(es) {bad} out of range (bands are 1-based: 1..{src.count})"
        )
    return bidx


def read_window(
    src: rasterio.DatasetReader, window: Window, bidx: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bidx`` bands of ``window`` as float32 (bands, h, w) and the validity mask (h, w) bool.

    Validity is GDAL's dataset mask (nodata value, mask band or alpha band), restricted to the
    selected bands being valid.
    """
    try:
        data = src.read(list(bidx), window=window, out_dtype="float32")
        masks = src.read_masks(list(bidx), window=window)
    except RasterioIOError as exc:
        raise InputError(f"{src.name}: read failed ({_first_line(exc)}); the file may be corrupt") from None
    valid = np.all(masks > 0, axis=0)
    if _has_alpha(src):
        valid &= src.dataset_mask(window=window) > 0
    # NaN in float rasters is never valid data.
    if np.issubdtype(np.dtype(src.dtypes[0]), np.floating):
        valid &= np.all(np.isfinite(data), axis=0)
    return data, valid


def _has_alpha(src: rasterio.DatasetReader) -> bool:
    from rasterio.enums import ColorInterp

    return ColorInterp.alpha in src.colorinterp


@dataclass(frozen=True)
class BandStats:
    """Per-band mean and standard deviation used to normalise the model's input."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: dict) -> "BandStats":
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]))


def compute_band_stats(
    paths: Iterable[str | Path], bidx: Sequence[int], *, max_pixels: int = 4_000_000, block: int = 512
) -> BandStats:
    """Per-band mean/std over the valid pixels of one or more rasters, ignoring nodata.

    Streams windows on a regular grid; for big scenes it subsamples windows evenly so that about
    ``max_pixels`` pixels per raster are read. Sums are accumulated in float64.
    """
    n = 0
    s = np.zeros(len(bidx), np.float64)
    s2 = np.zeros(len(bidx), np.float64)
    for path in paths:
        with open_raster_quiet(path) as src:
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


def open_raster_quiet(path: str | Path) -> rasterio.DatasetReader:
    """:func:`open_raster` without the no-CRS warning (for statistics and masks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoCRSWarning)
        return open_raster(path)


def grid_windows(width: int, height: int, block: int) -> list[Window]:
    """Non-overlapping windows of ``block`` pixels covering the raster (edge windows are smaller)."""
    return [
        Window(c, r, min(block, width - c), min(block, height - r))
        for r in range(0, height, block)
        for c in range(0, width, block)
    ]


def normalize(data: np.ndarray, valid: np.ndarray | None, stats: BandStats) -> np.ndarray:
    """(x - mean) / std per band; invalid pixels become 0 (the band mean), so nodata cannot leak in."""
    mean, std = stats.as_arrays()
    out = (data - mean[:, None, None]) / std[:, None, None]
    if valid is not None:
        out[:, ~valid] = 0.0
    return out.astype(np.float32, copy=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

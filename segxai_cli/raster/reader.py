"""Opening and validating input rasters, and windowed reads with GDAL's validity mask.

Everything reads by window: memory never grows with the scene size. Band indexes are 1-based, as in
GDAL and rio (``-b/--bidx``).

Validity (the one rule, used by explain, evaluate and train): a pixel is valid where GDAL's dataset
mask says so for the selected bands — the internal mask or alpha band when the file has one,
otherwise valid where *any* selected band is not its nodata value (GDAL and rasterio's
``dataset_mask`` take the OR of the band masks) — and never where a selected band holds NaN or ±Inf
(such a value would poison every convolution it touches).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Union

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

from segxai_cli.errors import InputError, UsageError
from segxai_cli.raster.gdal_io import GDAL_ERRORS, TransientReadError, gdal_error, gdal_open
from segxai_cli.raster.source import RasterSource, SourceLike


class NoCRSWarning(UserWarning):
    """The raster has no CRS: outputs are written in the same pixel grid but cannot be placed on a map."""


def open_raster(location: SourceLike, *, require_crs: bool = False) -> rasterio.DatasetReader:
    """Open a raster for reading, turning GDAL's failures into one-line :class:`InputError`s.

    Network locations are retried on transient failures (:mod:`segxai_cli.raster.gdal_io`); a
    format whose windows GDAL cannot read efficiently (PNG, JPEG, …: they decode from the top for
    every window) is refused with its driver's name. A raster without a CRS is accepted with a :class:`NoCRSWarning` (its pixel grid is still copied to
    the outputs) unless ``require_crs`` is set.
    """
    source = RasterSource.of(location)
    if source.is_local:
        path = source.path
        if not path.exists():
            raise InputError(f"{source}: no such file")
        if path.is_dir():
            raise InputError(f"{source}: is a directory, not a GeoTIFF")
    if source.is_local:
        try:
            src = source.open()
        except GDAL_ERRORS as exc:
            raise InputError(f"{source}: not a readable GeoTIFF or other raster ({_first_line(exc)})") from None
    else:
        src = gdal_open(source.gdal_path, str(source), source.remote_prefixes())
    if src.driver not in source.drivers:
        src.close()
        raise InputError(f"{source}: is a {src.driver} file; GDAL cannot read windows of it efficiently "
                         "(convert it to a Cloud-Optimized GeoTIFF: gdal_translate -of COG IN OUT.tif)")
    if src.crs is None:
        if require_crs:
            src.close()
            raise InputError(f"{source}: has no CRS (coordinate reference system)")
        warnings.warn(f"{source}: has no CRS; outputs keep its pixel grid but no map position", NoCRSWarning, stacklevel=2)
    return src


def open_raster_quiet(location: SourceLike) -> rasterio.DatasetReader:
    """:func:`open_raster` without the no-CRS warning (for statistics, masks, worker threads)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoCRSWarning)
        return open_raster(location)


def check_bands(src: rasterio.DatasetReader, bidx: Sequence[int]) -> list[int]:
    """Validate 1-based band indexes against the raster; return them as a list."""
    bidx = [int(b) for b in bidx]
    if not bidx:
        raise UsageError(f"{src.name}: no bands selected")
    bad = [b for b in bidx if b < 1 or b > src.count]
    if bad:
        raise InputError(
            f"{src.name}: has {src.count} band(s); band index(es) {bad} out of range (bands are 1-based: 1..{src.count})"
        )
    return bidx


def read_window(
    src: rasterio.DatasetReader, window: Window, bidx: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Read ``bidx`` bands of ``window`` as float32 (bands, h, w) and the validity mask (h, w) bool
    (the rule in the module docstring)."""
    bidx = list(bidx)
    try:
        data = src.read(bidx, window=window, out_dtype="float32")
        valid = _valid_mask(src, window, bidx)
    except GDAL_ERRORS as exc:
        err = gdal_error(_shown(src), exc)
        if type(err) is InputError:
            err = InputError(f"{err}; the file may be corrupt")
        raise err from None
    valid &= np.isfinite(data).all(axis=0)
    return data, valid


def read_window_retrying(source: RasterSource, src: rasterio.DatasetReader, window: Window, bidx: Sequence[int]
                         ) -> tuple[rasterio.DatasetReader, np.ndarray, np.ndarray]:
    """:func:`read_window` that reopens the dataset and retries after a transient network failure
    (the retries and waits of :mod:`segxai_cli.cloud.retry`); → (the handle to keep, data, valid)."""
    from segxai_cli.cloud.retry import delays

    waits = delays()
    while True:
        try:
            return (src, *read_window(src, window, bidx))
        except TransientReadError:
            wait = next(waits, None)
            if wait is None or source.is_local:
                raise
            import time

            time.sleep(wait)
            src.close()
            src = gdal_open(source.gdal_path, str(source), source.remote_prefixes())


BandSpec = Union[int, str]


def resolve_bands(src: rasterio.DatasetReader, bands: Sequence[BandSpec], shown: str = "") -> list[int]:
    """Band numbers (1-based) or names → numbers. A name matches a band's ``common_name`` metadata
    (STAC stacks carry it), its description, or its colour interpretation (``red``, ``green``…)."""
    if all(isinstance(b, int) for b in bands):
        return [int(b) for b in bands]
    labels = []
    for i in range(1, src.count + 1):
        tags = src.tags(i)
        names = {tags.get("common_name", ""), tags.get("stac_asset", ""), src.descriptions[i - 1] or "",
                 src.colorinterp[i - 1].name}
        labels.append({n.lower() for n in names if n})
    out = []
    for b in bands:
        if isinstance(b, int):
            out.append(b)
            continue
        hits = [i for i, names in enumerate(labels, 1) if b.lower() in names]
        if len(hits) != 1:
            what = "no band" if not hits else f"{len(hits)} bands"
            raise InputError(f"{shown or _shown(src)}: {what} named {b!r} (band names: "
                             f"{', '.join('/'.join(sorted(n)) or '?' for n in labels)})")
        out.append(hits[0])
    return out


def _shown(src: rasterio.DatasetReader) -> str:
    from segxai_cli.cloud.redact import redact

    name = src.name
    if name.startswith("<VRTDataset"):
        return "STAC item stack"
    return redact(name.replace("/vsicurl/", "", 1))


def _valid_mask(src: rasterio.DatasetReader, window: Window, bidx: list[int]) -> np.ndarray:
    flags = src.mask_flag_enums
    shared = [b for b in bidx if MaskFlags.per_dataset in flags[b - 1]]
    if shared:  # an internal mask or an alpha band: one mask for every band
        return src.read_masks(shared[0], window=window) > 0
    return (src.read_masks(bidx, window=window) > 0).any(axis=0)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

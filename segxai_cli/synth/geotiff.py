"""Synthetic scenes as GeoTIFF pairs: a georeferenced RGB scene and its building mask.

Profiles are fixed (tiled 256 x 256, DEFLATE with predictor 2, RGB or 12-bit-like uint16, UTM 33N
near Vienna by default) so that the same seed and size give the same bytes on every run: the sample
scenes in ``sample_tiles/`` are reproduced byte for byte by ``segxai synth``.

:func:`write_scene` streams a scene of any size window by window (:func:`.render.render_window`), so
memory does not grow with the scene, and writes both files atomically (:mod:`segxai_cli.files`).
:func:`generate_scene` renders a (small) scene in memory for tests and benchmarks.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from segxai_cli.errors import OutputError
from segxai_cli.files import atomic_path, remove_stale_sidecars, remove_stale_temps
from segxai_cli.synth.render import render_window

DEFAULT_CRS = "EPSG:32633"  # WGS 84 / UTM zone 33N
DEFAULT_ORIGIN = (601_000.0, 5_340_000.0)  # upper-left corner, near Vienna (UTM 33N, metres)
BAND_NAMES = ("red", "green", "blue")
# The module that wrote the sample scenes was ``segxai_cli/synthetic.py``. This tag is stored inside
# every GeoTIFF, so changing it would change the bytes of the files (and break the byte-for-byte
# reproduction of sample_tiles/): keep the old value.
GENERATOR_TAG = "segxai_cli.synthetic"
CONTENT_TAG = "synthetic aerial scene: buildings, shadows, roads, trees, grass, soil, paving; 0.3 m pixels"


def _transform(origin, pixel_size):
    from affine import Affine

    return Affine(float(pixel_size), 0.0, float(origin[0]), 0.0, -float(pixel_size), float(origin[1]))


def scene_profile(
    width: int,
    height: int,
    *,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
) -> dict:
    """rasterio creation profile of a synthetic scene (tiled 256, DEFLATE + predictor 2)."""
    from rasterio.crs import CRS

    return dict(
        driver="GTiff",
        width=int(width),
        height=int(height),
        count=3,
        dtype=dtype,
        crs=CRS.from_user_input(crs),
        transform=_transform(origin, pixel_size),
        nodata=0 if nodata_border else None,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=2,
        interleave="pixel",
        photometric="RGB" if dtype == "uint8" else "MINISBLACK",
        BIGTIFF="IF_SAFER",
    )


def mask_profile(scene: dict) -> dict:
    """Profile of the building mask that goes with ``scene`` (uint8 0/1 with a colour table)."""
    prof = dict(scene)
    prof.update(count=1, dtype="uint8", nodata=None, photometric="PALETTE", interleave="band")
    return prof


MASK_COLORMAP = {0: (0, 0, 0, 0), 1: (255, 0, 0, 255)}


def generate_scene(
    width: int,
    height: int,
    seed: int,
    *,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A whole scene in memory: image (3, H, W) uint8/uint16, mask (H, W) uint8 (1 = building), profile.

    For large scenes use :func:`write_scene`, which never holds the whole scene.
    """
    _check_size(width, height)
    img, mask = render_window(
        seed, 0, 0, width, height, scene_width=width, scene_height=height, nodata_border=nodata_border, dtype=dtype
    )
    prof = scene_profile(width, height, pixel_size=pixel_size, origin=origin, crs=crs, dtype=dtype, nodata_border=nodata_border)
    return img, mask, prof


def _check_size(width: int, height: int) -> None:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"scene size must be positive, got {width}x{height}")



def _remove_stale_sidecars(path: Path) -> None:
    """Sidecars of an older file under this name, which would be applied to the new one: GDAL's
    (statistics, masks, overviews) and a QGIS style ``<stem>.qml`` (QGIS loads it automatically)."""
    remove_stale_sidecars(path)
    path.with_suffix(".qml").unlink(missing_ok=True)


def write_scene(
    path_image: str | os.PathLike,
    path_mask: str | os.PathLike,
    width: int,
    height: int,
    seed: int,
    *,
    block: int = 1024,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
    overwrite: bool = False,
) -> dict:
    """Generate a scene window by window and write it and its mask as tiled, compressed GeoTIFFs.

    Memory is bounded by ``block`` (a few hundred MB at most for block=1024), not by the scene
    size. Both files are written under temporary names in their destination folders and renamed
    onto their final names only when both are complete (the mask first, then the image): a failure
    or an interrupt leaves neither final name half-written, and an existing file untouched unless
    its replacement is complete. Raises :class:`~segxai_cli.errors.OutputError` if an output exists
    and ``overwrite`` is false, a destination folder is missing, or a file cannot be written.
    Returns a summary (paths, size, building fraction).
    """
    _check_size(width, height)
    if block < 1:
        raise ValueError("block must be positive")
    pimg, pmask = Path(path_image), Path(path_mask)
    if pimg.resolve() == pmask.resolve():
        raise OutputError(f"{pimg}: image and mask paths are the same")
    for pth in (pimg, pmask):
        if not pth.parent.is_dir():
            raise OutputError(f"{pth}: destination folder {pth.parent} does not exist")
        if pth.exists() and not overwrite:
            raise OutputError(f"{pth} already exists (use --overwrite to replace it)")
    prof = scene_profile(width, height, pixel_size=pixel_size, origin=origin, crs=crs, dtype=dtype, nodata_border=nodata_border)
    for pth in (pimg, pmask):
        remove_stale_temps(pth)  # left by a killed run
    # Leaving the inner block publishes the mask, then the outer one the image; an error before
    # (including a failed rename of the mask) deletes both temp files.
    with atomic_path(pimg, "part") as tmp_img, atomic_path(pmask, "part") as tmp_mask:
        try:
            n_building, n_valid = _write_windows(tmp_img, tmp_mask, prof, seed, block=block, nodata_border=nodata_border)
        finally:
            for tmp in (tmp_img, tmp_mask):
                Path(f"{tmp}.aux.xml").unlink(missing_ok=True)
        for pth in (pimg, pmask):
            _remove_stale_sidecars(pth)
    return dict(
        image=str(pimg),
        mask=str(pmask),
        width=int(width),
        height=int(height),
        seed=int(seed),
        building_fraction=n_building / max(1, n_valid),
    )


def _write_windows(
    path_image: Path, path_mask: Path, prof: dict, seed: int, *, block: int, nodata_border: bool
) -> tuple[int, int]:
    """Render the scene of ``prof`` window by window into two new GeoTIFFs.

    Returns (building pixels, valid pixels)."""
    import rasterio
    from rasterio.windows import Window

    width, height, dtype = prof["width"], prof["height"], prof["dtype"]
    n_building = 0
    n_valid = 0
    tags = dict(generator=GENERATOR_TAG, seed=str(seed), content=CONTENT_TAG)
    with rasterio.open(path_image, "w", **prof) as dimg, rasterio.open(path_mask, "w", **mask_profile(prof)) as dmask:
        for b, name in enumerate(BAND_NAMES, start=1):
            dimg.set_band_description(b, name)
        dimg.update_tags(**tags)
        dmask.set_band_description(1, "building")
        dmask.update_tags(**tags, classes="0=background,1=building")
        dmask.write_colormap(1, MASK_COLORMAP)
        for r in range(0, height, block):
            for c in range(0, width, block):
                w, h = min(block, width - c), min(block, height - r)
                img, mask = render_window(
                    seed, c, r, w, h, scene_width=width, scene_height=height, nodata_border=nodata_border, dtype=dtype
                )
                win = Window(c, r, w, h)
                dimg.write(img, window=win)
                dmask.write(mask, 1, window=win)
                n_building += int(mask.sum(dtype=np.int64))
                n_valid += int(np.count_nonzero(img[0])) if nodata_border else w * h
    return n_building, n_valid


def scene_names(count: int, seed: int, prefix: str = "scene") -> list[str]:
    """``<prefix>_<seed>`` for ``count`` consecutive seeds, zero-padded to a common width."""
    digits = max(2, len(str(seed + count - 1)))
    return [f"{prefix}_{s:0{digits}d}" for s in range(seed, seed + count)]


def write_scenes(outdir: str | Path, count: int, width: int, height: int, seed: int = 1, *, prefix: str = "scene",
                 dtype: str = "uint8", nodata_border: bool = False, block: int = 1024,
                 overwrite: bool = False) -> Iterator[dict]:
    """Write ``count`` scene/mask pairs (seeds ``seed``, ``seed+1``…) into ``outdir``, side by side.

    Existing files are refused before anything is written (unless ``overwrite``). Scenes are placed
    west to east with a gap of at least 1 km, on round kilometres, so they never overlap in a GIS.
    Yields each pair's info as it is written.
    """
    from segxai_cli.errors import UsageError

    if dtype not in ("uint8", "uint16"):
        raise UsageError(f"--dtype {dtype!r}: expected uint8 or uint16")
    if count < 1:
        raise UsageError(f"--count {count}: must be at least 1")
    outdir = Path(outdir)
    names = scene_names(count, seed, prefix)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir} exists and is not a folder")
    if not overwrite:
        for name in names:
            for p in (outdir / f"{name}.tif", outdir / f"{name}_mask.tif"):
                if p.exists():
                    raise OutputError(f"{p} already exists (use --overwrite to replace it)")
    outdir.mkdir(parents=True, exist_ok=True)
    stride = (math.ceil(width * 0.3 / 1000.0) + 1) * 1000.0
    for k, name in enumerate(names):
        yield write_scene(outdir / f"{name}.tif", outdir / f"{name}_mask.tif", width, height, seed + k, block=block,
                          origin=(DEFAULT_ORIGIN[0] + k * stride, DEFAULT_ORIGIN[1]), dtype=dtype,
                          nodata_border=nodata_border, overwrite=overwrite)

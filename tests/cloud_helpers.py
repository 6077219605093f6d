"""Shared pieces of the cloud tests (test_remote.py, test_stac_io.py): tiny scenes, COGs, and the
checks every output folder must pass (rio-cogeo's cog_validate, pystac's validation, no secret)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from servers.s3 import SECRET
from stac_validation import validate_file

SIG = "sig=TOPSECRET123"
FAST = {"methods": ["gradcam"], "tile_size": 64}


def scene_array(h: int = 96, w: int = 112, seed: int = 0, gaps: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 255, size=(3, h, w), dtype=np.uint8)
    a[:, 30:50, 40:70] = rng.integers(150, 255, size=(3, 20, 30))  # a bright "roof"
    if gaps:
        a[:, :8, :] = 0  # nodata strip
        a[:, 60:70, 90:] = 0
    return a


def make_cog(path: Path, array: np.ndarray, **kw) -> Path:
    from conftest import write_geotiff

    tmp = path.with_suffix(".src.tif")
    write_geotiff(tmp, array, nodata=0, **kw)
    rasterio.shutil.copy(tmp, path, driver="COG", BLOCKSIZE=128)
    tmp.unlink()
    return path


def outputs(folder: Path, stem: str) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(folder / f"{stem}_saliency.tif") as s, rasterio.open(folder / f"{stem}_prediction.tif") as p:
        return s.read(), p.read()


def assert_valid_outputs(folder: Path) -> None:
    """Every COG passes rio-cogeo's validation, every STAC document pystac's; no secret anywhere."""
    cogs = sorted(folder.glob("*.tif"))
    assert cogs
    for tif in cogs:
        ok, errors, _ = cog_validate(str(tif), strict=False, quiet=True)
        assert ok, (tif.name, errors)
    for doc in list(folder.glob("*.stac.json")) + [folder / "catalog.json"]:
        validate_file(doc)
    for f in folder.iterdir():
        if f.is_file():
            text = f.read_bytes()
            assert b"TOPSECRET" not in text and SECRET.encode() not in text, f.name


def assert_same(a: Path, stem_a: str, b: Path, stem_b: str) -> None:
    sa, pa = outputs(a, stem_a)
    sb, pb = outputs(b, stem_b)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_allclose(sa, sb, rtol=0, atol=1e-6, equal_nan=True)

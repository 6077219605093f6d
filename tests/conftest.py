"""Shared fixtures: tiny real GeoTIFFs (rasterio) and tiny real smp models — no mocks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from segxai_cli.model.checkpoint import save_checkpoint
from segxai_cli.model.families import build_model
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.stats import BandStats

torch.set_num_threads(min(2, torch.get_num_threads()))

CRS = "EPSG:32633"
ORIGIN = (500000.0, 5000000.0)


def write_geotiff(
    path: Path,
    array: np.ndarray,
    *,
    crs: str | None = CRS,
    transform=None,
    nodata: float | None = None,
    pixel_size: float = 0.3,
) -> Path:
    """Write a (bands, H, W) or (H, W) array as a tiled GeoTIFF at 0.3 m in UTM 33N."""
    arr = array if array.ndim == 3 else array[None]
    count, h, w = arr.shape
    transform = transform or from_origin(ORIGIN[0], ORIGIN[1], pixel_size, pixel_size)
    profile = dict(driver="GTiff", width=w, height=h, count=count, dtype=arr.dtype, transform=transform)
    if crs is not None:
        profile["crs"] = crs
    if nodata is not None:
        profile["nodata"] = nodata
    if w >= 16 and h >= 16:
        profile.update(tiled=True, blockxsize=16 * max(1, min(w, h, 256) // 16), blockysize=16 * max(1, min(w, h, 256) // 16))
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
    return path


@pytest.fixture
def make_geotiff(tmp_path):
    """Factory: ``make_geotiff(name, array, **kw)`` writes into the test's tmp folder."""

    def _make(name: str, array: np.ndarray, **kw) -> Path:
        return write_geotiff(tmp_path / name, array, **kw)

    return _make


def tiny_model_info(in_channels: int = 3, classes: int = 2, tile_size: int = 64) -> ModelInfo:
    return ModelInfo(
        arch="Unet",
        encoder="resnet18",
        in_channels=in_channels,
        classes=classes,
        model_kwargs={"encoder_depth": 3, "decoder_channels": [32, 16, 8]},
        class_names=["background", "building"] if classes == 2 else None,
        band_stats=BandStats(tuple([100.0] * in_channels), tuple([50.0] * in_channels)),
        source_dtype="uint8",
        tile_size=tile_size,
    )


@pytest.fixture
def tiny_model():
    """A tiny, randomly initialised smp U-Net (3 bands, 2 classes) in eval mode, deterministic."""
    torch.manual_seed(0)
    info = tiny_model_info()
    return build_model(info).eval(), info


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model):
    model, info = tiny_model
    return save_checkpoint(tmp_path / "tiny.pt", model, info)


@pytest.fixture(scope="session")
def analyst_run(tmp_path_factory):
    """What an analyst opens, built once: two tiny scenes (128 x 96 and 96 x 64 px, synthetic
    buildings, with masks) explained with two methods — quicklooks, QGIS project — and a tiny study
    (curves, sanity check, ``--report``) written into the same folder."""
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app
    from segxai_cli.explain import explain_scenes
    from segxai_cli.synth import generate_scene

    root = tmp_path_factory.mktemp("analyst")
    scenes = root / "scenes"
    scenes.mkdir()
    paths = []
    for name, (w, h), seed in (("a", (128, 96), 1), ("b", (96, 64), 2)):
        img, mask, _ = generate_scene(w, h, seed)
        paths.append(write_geotiff(scenes / f"{name}.tif", img))
        write_geotiff(scenes / f"{name}_mask.tif", mask)
    torch.manual_seed(0)
    info = tiny_model_info()
    model = build_model(info).eval()
    out = root / "out"
    run = explain_scenes(paths, out, model=(model, info), methods=["gradcam", "hirescam"])
    assert run.ok
    ckpt = save_checkpoint(root / "tiny.pt", model, info)
    res = CliRunner().invoke(app, [
        "evaluate", *map(str, paths), "--masks", str(scenes), "-m", str(ckpt), "-o", str(out / "study.csv"),
        "--method", "gradcam,hirescam", "--threshold", "0.3", "--curve-steps", "2", "--sanity", "--max-tiles", "2",
        "--device", "cpu", "--chunk", "64", "-q", "--report",
    ])
    assert res.exit_code == 0, res.output
    return out


# ----------------------------------------------------------------------------- cloud tests (loopback servers)
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """The tests' tiny U-Net as a checkpoint, once for the module (every test only reads it)."""
    torch.manual_seed(0)
    info = tiny_model_info()
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", build_model(info).eval(), info)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A Range-capable HTTP server on 127.0.0.1 serving a small COG, scene.tif (tests/servers)."""
    from cloud_helpers import make_cog, scene_array
    from servers.http_range import RangeServer

    root = tmp_path_factory.mktemp("www")
    make_cog(root / "scene.tif", scene_array())
    with RangeServer(root) as srv:
        yield srv


@pytest.fixture
def www(server):
    """The module's server with a clean slate: no planned failures, an empty request log."""
    for d in (server.fail_once, server.status, server.fail_at, server.gets):
        d.clear()
    server.requests.clear()
    yield server
    for f in list(server.root.iterdir()):
        if f.name != "scene.tif":
            f.unlink()


@pytest.fixture(scope="module")
def local_ref(tmp_path_factory, server, ckpt):
    """The local explanation of the served file (what every remote read must reproduce)."""
    from cloud_helpers import FAST

    from segxai_cli.explain import explain_scenes

    out = tmp_path_factory.mktemp("ref")
    run = explain_scenes([str(server.root / "scene.tif")], out, str(ckpt), **FAST)
    assert run.ok
    return out


@pytest.fixture
def bands_folder(tmp_path):
    """B02/B03/B04 at 0.3 m, B8A at 0.6 m (same footprint), and the 3-band reference stack B04,B03,B02."""
    from cloud_helpers import make_cog, scene_array

    d = tmp_path / "item"
    d.mkdir()
    arr = scene_array(96, 112, seed=3)
    for i, key in enumerate(["B04", "B03", "B02"]):
        make_cog(d / f"{key}.tif", arr[i])
    make_cog(d / "B8A.tif", arr[0, ::2, ::2], pixel_size=0.6)
    write_geotiff(tmp_path / "stack.tif", arr, nodata=0)
    return d

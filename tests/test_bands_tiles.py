"""Scenes people have (4-band uint16 in the family matrix; 13-band float Sentinel-2-like here) and
tiles that are not a multiple of 32: refused or handled per the model's real stride."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.model.checkpoint import save_checkpoint
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.stats import BandStats
from tests.model_zoo import build, infos, segformer_config

runner = CliRunner()


def _sentinel2(path, h=72, w=88):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.stack([0.1 + 0.05 * np.sin(yy / (4 + b)) * np.cos(xx / 6) + rng.normal(0, 0.01, (h, w))
                    for b in range(13)]).astype(np.float32)
    from tests.conftest import write_geotiff

    return write_geotiff(path, arr)


def _info(**kw) -> ModelInfo:
    info = ModelInfo(**kw)
    info.band_stats = BandStats(tuple([0.1] * info.in_channels), tuple([0.03] * info.in_channels))
    info.source_dtype = "float32"
    return info


@pytest.mark.parametrize("family", ["smp", "hf"])
def test_thirteen_band_float_scene(tmp_path, family):
    scene = _sentinel2(tmp_path / "s2.tif")
    if family == "smp":
        info = _info(arch="Unet", encoder="tu-resnet10t", in_channels=13, classes=3, tile_size=64,
                     model_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]})
    else:
        info = _info(family="hf", arch="SegformerForSemanticSegmentation", encoder="", in_channels=13, classes=3,
                     tile_size=64, model_kwargs={"config": segformer_config(bands=13, classes=3)})
    ckpt = save_checkpoint(tmp_path / "m.pt", build(info), info)
    res = runner.invoke(app, ["explain", str(scene), "-m", str(ckpt), "-o", str(tmp_path / "out"), "-q",
                              "--method", "gradcam,eigencam", "--class", "0"])
    assert res.exit_code == 0, res.output
    with rasterio.open(tmp_path / "out" / "s2_saliency.tif") as src:
        data = src.read()
        assert src.count == 2 and (src.width, src.height) == (88, 72)
    assert np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1


def test_tiles_per_real_stride(tmp_path):
    from tests.conftest import write_geotiff
    from tests.test_families import scene_array

    scene = write_geotiff(tmp_path / "s.tif", scene_array())
    zoo = infos()
    deep = _info(arch="Unet", encoder="tu-resnet10t", in_channels=4, classes=2, tile_size=64)  # depth 5: stride 32
    cases = {"unet5": deep, "pan": zoo["smp-PAN"], "deeplab": zoo["smp-DeepLabV3"], "fcn": zoo["torchgeo-fcn"]}
    ckpts = {k: save_checkpoint(tmp_path / f"{k}.pt", build(i), i) for k, i in cases.items()}

    def run(name, tile):
        return runner.invoke(app, ["explain", str(scene), "-m", str(ckpts[name]), "-o", str(tmp_path / f"{name}{tile}"),
                                   "-q", "--tile-size", str(tile), "--method", "eigencam"])

    refused = run("unet5", 48)
    assert refused.exit_code == 2 and "must be a multiple of 32" in refused.output
    small = run("pan", 32)  # PAN pools its bottleneck three more times: 8 x its stride at least
    assert small.exit_code == 2 and "at least 64" in small.output
    for name, tile in (("deeplab", 40), ("fcn", 50)):  # strides 8 and 1: handled
        res = run(name, tile)
        assert res.exit_code == 0, res.output
        with rasterio.open(tmp_path / f"{name}{tile}" / "s_saliency.tif") as src:
            assert (src.width, src.height) == (96, 80) and np.isfinite(src.read()).all()

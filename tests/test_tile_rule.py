"""The one tile rule (pad + validity + normalise) and GDAL's validity, through explain, evaluate and train.

Regression tests for 0.1.0, where ``((x - mean) / std) * valid`` turned NaN nodata into NaN saliency
(NaN × 0 = NaN), ±Inf pixels counted as valid, and a pixel where only one band equals the nodata value
was dropped although GDAL's dataset mask calls it valid.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from segxai_cli.evaluation import evaluate_scenes
from segxai_cli.explain import explain_scene
from segxai_cli.raster.reader import open_raster, read_window
from segxai_cli.raster.stats import BandStats
from segxai_cli.tiling.tiles import inside_mask, normalize, pad_tile, prepare_tiles
from segxai_cli.training.loop import train_model


def _float_scene(h=96, w=96, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.normal(100, 30, (3, h, w)).astype(np.float32)
    img[:, 20:40, 20:40] = np.nan  # a NaN block (float nodata)
    img[:, 60:70, :] = np.inf  # whole rows of +Inf
    img[1, 80:90, 5:15] = -np.inf  # -Inf in one band only
    return img


def _invalid(img):
    return ~np.isfinite(img).all(0)


# ----------------------------------------------------------------------------- the rule itself
def test_read_window_non_finite_is_invalid(make_geotiff):
    img = _float_scene()
    p = make_geotiff("f.tif", img)
    with open_raster(p) as src:
        data, valid = read_window(src, Window(0, 0, 96, 96), [1, 2, 3])
    assert np.array_equal(valid, ~_invalid(img))


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_partial_band_nodata_is_valid_as_gdal_says(make_geotiff, dtype):
    img = np.full((3, 32, 32), 500, dtype)
    img[0, 5, 5] = 0  # one band at the nodata value: GDAL's dataset mask still calls the pixel valid
    img[:, 10, 10] = 0  # all bands: nodata
    p = make_geotiff("n.tif", img, nodata=0)
    with open_raster(p) as src:
        _, valid = read_window(src, Window(0, 0, 32, 32), [1, 2, 3])
        gdal = src.dataset_mask() > 0
    assert valid[5, 5] and not valid[10, 10]
    assert np.array_equal(valid, gdal)


def test_alpha_band_is_the_mask(make_geotiff):
    img = np.full((4, 16, 16), 100, np.uint8)
    img[3] = 255
    img[3, :4] = 0
    p = make_geotiff("rgba.tif", img)
    with rasterio.open(p, "r+") as ds:
        ds.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                          rasterio.enums.ColorInterp.blue, rasterio.enums.ColorInterp.alpha]
    with open_raster(p) as src:
        _, valid = read_window(src, Window(0, 0, 16, 16), [1, 2, 3])
    assert not valid[:4].any() and valid[4:].all()


def test_normalize_zeroes_invalid_even_when_non_finite():
    x = torch.tensor([[[[np.nan, np.inf], [-np.inf, 150.0]]]])
    valid = torch.tensor([[[False, False], [False, True]]])
    out = normalize(x, valid, BandStats((100.0,), (50.0,)))
    assert torch.isfinite(out).all()
    assert out.flatten().tolist() == [0.0, 0.0, 0.0, 1.0]


def test_padding_mirrors_validity_and_is_never_inside():
    data = np.arange(2 * 6 * 7, dtype=np.float32).reshape(2, 6, 7)
    data[:, 4, 6] = np.nan  # mirrored into the padding at (6, 6) (reflection, no edge repeat)
    valid = np.isfinite(data).all(0)
    x, v = pad_tile(data, valid, 8)
    assert x.shape == (2, 8, 8) and v.shape == (8, 8)
    assert not v[4, 6] and not v[6, 6] and v[6, 5] and v[7, 7]
    assert torch.isnan(x[0, 6, 6])  # the raw mirrored value is NaN: only normalisation makes it safe
    images, inside_valid = prepare_tiles([(data, valid)], BandStats((0.0, 0.0), (1.0, 1.0)), 8)
    assert torch.isfinite(images).all() and images[0, 0, 6, 6] == 0
    assert inside_valid[0, :6, :7].sum() == 41 and not inside_valid[0, 6:].any() and not inside_valid[0, :, 7:].any()
    tiny = np.ones((1, 2, 3), np.float32)  # too small to reflect: replicated
    xt, vt = pad_tile(tiny, np.ones((2, 3), bool), 8)
    assert vt.all() and torch.equal(inside_mask([(2, 3)], 8)[0].sum(), torch.tensor(6))


# ----------------------------------------------------------------------------- explain, evaluate, train
def _tiny_float_model(tiny_model):
    model, info = tiny_model
    info.source_dtype = "float32"
    return model, info


def test_explain_float_scene_with_nan_and_inf(tmp_path, make_geotiff, tiny_model):
    img = _float_scene()
    p = make_geotiff("f.tif", img)
    r = explain_scene(p, tmp_path / "out", model=_tiny_float_model(tiny_model), methods=["gradcam", "eigencam"],
                      device="cpu")
    bad = _invalid(img)
    with rasterio.open(r.saliency) as sal, rasterio.open(r.prediction) as pred:
        s, c = sal.read(), pred.read(1)
    assert np.isfinite(s[:, ~bad]).all(), "every valid pixel gets a finite saliency"
    assert np.isnan(s[:, bad]).all() and (c[bad] == 255).all() and (c[~bad] != 255).all()
    for band in s:
        assert 0.0 <= np.nanmin(band) and np.nanmax(band) <= 1.0
    stats = r.stats
    assert all(math.isfinite(v) for v in stats.minimum + stats.maximum + stats.mean_raw)
    assert stats.valid_pixels == int((~bad).sum())


def test_explain_integer_scene_partial_band_nodata(tmp_path, make_geotiff, tiny_model):
    rng = np.random.default_rng(1)
    img = rng.integers(1, 4000, (3, 64, 64)).astype(np.uint16)
    img[0, 10:20, 10:20] = 0  # one band at nodata: valid per GDAL
    img[:, 40:50, 40:50] = 0  # every band: nodata
    p = make_geotiff("u.tif", img, nodata=0)
    model, info = tiny_model
    info.source_dtype = "uint16"
    r = explain_scene(p, tmp_path / "out", model=(model, info), device="cpu")
    with rasterio.open(r.saliency) as sal:
        s = sal.read(1)
    assert np.isfinite(s[10:20, 10:20]).all() and np.isnan(s[40:50, 40:50]).all()
    assert np.isfinite(s).sum() == 64 * 64 - 100


def test_evaluate_float_scene_with_nan_and_inf(make_geotiff, tiny_model):
    p = make_geotiff("f.tif", _float_scene(h=64, w=128))
    rows = evaluate_scenes([p], model=_tiny_float_model(tiny_model), methods=["gradcam"], curve_steps=2,
                           device="cpu")
    assert rows
    for r in rows:
        for k in ("confidence_full", "entropy_full", "kept_fraction", "ips"):
            assert r[k] is None or math.isnan(r[k]) and r["empty_target"] or math.isfinite(r[k]), (k, r[k])
    assert all(math.isfinite(r["confidence_full"]) for r in rows if not r["empty_target"])


def test_train_on_float_scene_with_nan_and_inf(make_geotiff, tmp_path):
    img = _float_scene()
    mask = (np.nan_to_num(img[0], nan=0, posinf=0) > 100).astype(np.uint8)
    make_geotiff("f.tif", img)
    make_geotiff("f_mask.tif", mask)
    res = train_model(tmp_path / "f.tif", tmp_path / "f_mask.tif", tmp_path / "m.pt", encoder="resnet18",
                      model_kwargs={"encoder_depth": 3, "decoder_channels": [8, 8, 8]}, tile_size=32, batch_size=4,
                      samples_per_epoch=8, epochs=1, val_fraction=0.25, device="cpu")
    assert all(math.isfinite(h["loss"]) for h in res.history)
    assert all(math.isfinite(v) for v in res.info.band_stats.mean + res.info.band_stats.std)

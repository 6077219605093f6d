"""Quicklooks and per-band styles: previews come from the COG's overviews, sparse maps stay visible,
the data is never stretched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from segxai_cli.explain import explain_scene
from segxai_cli.explain.outputs import quicklook as Q
from segxai_cli.raster.display import cumulative_cut, display_range, outline, preview_shape, read_preview
from segxai_cli.raster.writer import StreamingWriter


def test_preview_is_read_from_the_coarsest_overview_that_is_large_enough(tmp_path):
    path = tmp_path / "big.tif"
    w = StreamingWriter(path, width=1100, height=700, count=1, dtype="float32", nodata=float("nan"),
                        crs=rasterio.crs.CRS.from_epsg(32633), transform=rasterio.transform.from_origin(0, 0, 1, 1))
    with w:
        for row in range(0, 700, 256):
            w.write(row, np.full((1, min(256, 700 - row), 1100), row / 700, np.float32))
    w.finalize().commit()
    with rasterio.open(path) as src:
        assert src.overviews(1) == [2, 4]  # 550 x 350, 275 x 175
    p = read_preview(path, max_side=512)
    assert p.overview_level == 0 and p.data.shape == (1, 326, 512) and p.valid.all()
    assert read_preview(path, max_side=256).overview_level == 1
    assert read_preview(path, max_side=600).overview_level is None  # the 550 px overview is too small
    assert preview_shape(1100, 700, 2000) == (700, 1100)  # never upsampled


def test_display_range_uses_the_non_zero_values_and_cumulative_cut_the_valid_ones():
    sal = np.zeros((100, 100), np.float32)
    sal[:5, :5] = np.linspace(0.01, 0.02, 25).reshape(5, 5)  # sparse, faint
    lo, hi = display_range(sal, np.ones_like(sal, bool))
    assert 0.01 <= lo < hi <= 0.02
    assert display_range(np.zeros((4, 4)), np.ones((4, 4), bool)) == (0.0, 1.0)
    data = np.arange(100, dtype=np.float32).reshape(1, 10, 10)
    valid = np.ones((10, 10), bool)
    valid[0] = False  # 0..9 are nodata
    [(lo, hi)] = cumulative_cut(data, valid)
    np.testing.assert_allclose((lo, hi), np.quantile(np.arange(10, 100), [0.02, 0.98]))


def test_outline_is_the_inner_contour():
    m = np.zeros((6, 6), bool)
    m[1:5, 1:5] = True
    ring = outline(m)
    assert ring.sum() == 12 and not ring[2:4, 2:4].any() and (ring <= m).all()


def test_quicklooks_and_band_styles_of_a_scene(analyst_run):
    rec = json.loads((analyst_run / "a_saliency.json").read_text())
    ql = rec["published"]["quicklooks"]
    assert ql["panel"] == "a_quicklook.png" and ql["bands"] == {"gradcam": "a_quicklook_gradcam.png",
                                                                 "hirescam": "a_quicklook_hirescam.png"}
    for name in [ql["panel"], *ql["bands"].values()]:
        img = Image.open(analyst_run / name)
        assert img.format == "PNG" and min(img.size) > 64
        assert len(img.convert("RGB").getcolors(1 << 16) or []) > 50  # a picture, not a blank
    assert rec["published"]["band_styles"] == {"gradcam": "a_saliency_gradcam.qml", "hirescam": "a_saliency_hirescam.qml"}
    style = (analyst_run / "a_saliency_hirescam.qml").read_text()
    assert 'type="singlebandpseudocolor" band="2"' in style and 'value="hirescam"' in style
    with rasterio.open(analyst_run / "a_saliency.tif") as src:  # the data is not stretched
        data = src.read(masked=True)
        assert data.min() >= 0 and abs(data.max() - 1) < 1e-6


def test_no_quicklook_option_and_the_size_cap(tmp_path, make_geotiff, tiny_model, monkeypatch):
    scene = make_geotiff("s.tif", np.random.default_rng(0).integers(0, 255, (3, 64, 64), dtype=np.uint8))
    r = explain_scene(scene, tmp_path / "off", model=tiny_model, quicklook=False)
    assert r.status == "done" and not list((tmp_path / "off").glob("*.png"))
    monkeypatch.setattr(Q, "QUICKLOOK_MAX_MEGAPIXELS", 0.001)  # 64 x 64 px = 0.004 MP: above the cap
    r = explain_scene(scene, tmp_path / "cap", model=tiny_model)
    assert r.status == "done" and not list((tmp_path / "cap").glob("*.png"))
    assert explain_scene(scene, tmp_path / "cap", model=tiny_model, skip_existing=True).status == "skipped"
    r = explain_scene(scene, tmp_path / "forced", model=tiny_model, quicklook=True)
    assert (tmp_path / "forced" / "s_quicklook.png").is_file()


@pytest.mark.parametrize("band,expected", [(None, "s_quicklook.png"), ("gradcam++@decoder.last", "s_quicklook_gradcam++@decoder.last.png"),
                                           ("a/b c", "s_quicklook_a_b_c.png")])
def test_quicklook_names(tmp_path, band, expected):
    assert Q.quicklook_path(tmp_path, "s", band).name == expected

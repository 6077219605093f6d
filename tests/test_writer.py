"""The streaming writer: temp GTiff → COG → rename; metadata; cleanup; QGIS styles."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rio_cogeo.cogeo import cog_validate

from segxai_cli.errors import OutputError
from segxai_cli.raster.style import heatmap_qml, palette_aux_xml, paletted_qml, write_heatmap_style
from segxai_cli.files import remove_stale_temps, temp_name
from segxai_cli.raster.writer import StreamingWriter, cog_problems, minmax_scale

TRANSFORM = from_origin(500000.0, 5000000.0, 0.3, 0.3)
CRS_UTM = CRS.from_epsg(32633)


def _write(path, W=600, H=560, count=2, scale=None, clamp=False, **kw):
    rng = np.random.default_rng(0)
    data = (rng.random((count, H, W)) * 4 + 1).astype("float32")
    data[:, :10, :20] = np.nan
    w = StreamingWriter(path, width=W, height=H, count=count, dtype="float32", crs=CRS_UTM, transform=TRANSFORM,
                        nodata=float("nan"), descriptions=[f"m{i}" for i in range(count)],
                        tags={"model": "tiny", "layer": "decoder.last"}, band_tags=[{"method": f"m{i}"} for i in range(count)],
                        **kw)
    with w:
        for r in range(0, H, 256):
            w.write(r, data[:, r:r + 256])
    existed = path.exists()
    w.finalize(scale, clamp=clamp)
    assert path.exists() == existed  # finalized = made and checked under a temp name; committing renames it
    w.commit()
    return data


def test_cog_with_metadata_and_georeferencing(tmp_path):
    out = tmp_path / "a_saliency.tif"
    data = _write(out)
    assert cog_problems(out) == []
    assert cog_validate(str(out), quiet=True)[0]  # rio-cogeo agrees
    with rasterio.open(out) as src:
        assert src.crs == CRS_UTM and src.transform == TRANSFORM
        assert src.descriptions == ("m0", "m1")
        assert src.tags()["model"] == "tiny" and src.tags(2)["method"] == "m1"
        assert np.isnan(src.nodata)
        assert src.compression.name == "deflate"
        assert src.overviews(1)  # 600 px > one 512 block
        np.testing.assert_array_equal(src.read(), data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_saliency.tif"]  # no temp files left


def test_rescale_during_cog_copy(tmp_path):
    out = tmp_path / "b.tif"
    data = _write(out, scale=[minmax_scale(1.0, 5.0)] * 2)
    with rasterio.open(out) as src:
        got = src.read()
        assert src.descriptions == ("m0", "m1") and src.tags()["layer"] == "decoder.last"
    assert np.isnan(got[:, :10, :20]).all()
    np.testing.assert_allclose(got, (data - 1.0) / 4.0, atol=1e-6)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 1


def test_rescale_clamped_below_zero(tmp_path):
    """Clipped maps hold 0 outside the region; the region's min-max must map them to 0, not below."""
    out = tmp_path / "c.tif"
    data = _write(out, count=1, scale=[minmax_scale(2.0, 5.0)], clamp=True)
    with rasterio.open(out) as src:
        got = src.read()
    expect = np.clip((data - 2.0) / (3.0 + 1e-7), 0, None)
    np.testing.assert_allclose(got, expect, atol=1e-6)
    assert np.nanmin(got) == 0 and np.isnan(got[:, :10, :20]).all()


def test_class_raster_colour_table_with_transparent_background(tmp_path):
    """A TIFF palette cannot hold alpha: the colour table goes into the PAM sidecar, background transparent."""
    out = tmp_path / "p.tif"
    w = StreamingWriter(out, width=100, height=80, count=1, dtype="uint8", crs=CRS_UTM, transform=TRANSFORM,
                        nodata=255, overview_resampling="nearest")
    with w:
        w.write(0, np.ones((80, 100), np.uint8))
    w.finalize().commit()
    (tmp_path / "p.tif.aux.xml").write_text(palette_aux_xml(["background", "building"]))
    with rasterio.open(out) as src:
        assert src.colormap(1)[0] == (0, 0, 0, 0) and src.colormap(1)[1] == (230, 50, 50, 255)
        assert src.colorinterp[0].name == "palette" and src.nodata == 255
    assert cog_problems(out) == []
    assert cog_validate(str(out), quiet=True)[0]  # rio-cogeo agrees


def test_exception_leaves_no_file_and_no_temps(tmp_path):
    out = tmp_path / "c.tif"
    with pytest.raises(KeyboardInterrupt):
        with StreamingWriter(out, width=64, height=64, count=1, dtype="float32", transform=TRANSFORM, crs=CRS_UTM) as w:
            w.write(0, np.zeros((1, 32, 64), np.float32))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_overwrite_removes_stale_aux_xml(tmp_path):
    out = tmp_path / "d.tif"
    _write(out, W=64, H=64, count=1)
    (tmp_path / "d.tif.aux.xml").write_text("<PAMDataset/>")
    _write(out, W=64, H=64, count=1)
    assert not (tmp_path / "d.tif.aux.xml").exists()


def test_stale_temps_of_dead_processes_are_removed(tmp_path):
    final = tmp_path / "e.tif"
    mine = temp_name(final, "part.tif")
    dead = mine.with_name(mine.name.replace(f".{os.getpid()}.", ".999999999."))
    dead.write_bytes(b"x")
    other = tmp_path / ".unrelated.tmp"
    other.write_bytes(b"x")
    removed = remove_stale_temps(final)
    assert removed == [dead] and other.exists()


def test_missing_folder_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        StreamingWriter(tmp_path / "no" / "x.tif", width=8, height=8, count=1, dtype="float32").open()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_is_an_output_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError):
            StreamingWriter(ro / "x.tif", width=8, height=8, count=1, dtype="float32").open()
    finally:
        ro.chmod(0o700)


def test_qml_styles_are_valid_qgis_xml(tmp_path):
    root = ET.fromstring(heatmap_qml(0, 1).split("\n", 1)[1])
    r = root.find("pipe/rasterrenderer")
    assert r.get("type") == "singlebandpseudocolor" and r.get("band") == "1"
    shader = r.find("rastershader/colorrampshader")
    assert shader.get("colorRampType") == "INTERPOLATED"
    values = [float(i.get("value")) for i in shader.findall("item")]
    assert values[0] == 0 and values[-1] == 1 and values == sorted(values)
    pal = ET.fromstring(paletted_qml(["background", "building"]).split("\n", 1)[1])
    labels = [e.get("label") for e in pal.findall("pipe/rasterrenderer/colorPalette/paletteEntry")]
    assert labels == ["background", "building"]
    qml = write_heatmap_style(tmp_path / "x_saliency.tif")
    assert qml.name == "x_saliency.qml" and qml.read_text().startswith("<!DOCTYPE qgis")


@pytest.mark.parametrize("scaled,clamp", [(False, False), (True, False), (True, True)])
def test_band_statistics_are_exact_after_the_rescale(tmp_path, scaled, clamp):
    """STATISTICS_* in the COG equal numpy over its valid pixels: raw, min-max rescaled, and rescaled
    with clamping (a clipped map: exact zeros outside the region, the region's values ≥ its minimum)."""
    rng = np.random.default_rng(1)
    a = (rng.random((2, 70, 90)) * 3 + 0.5).astype("float32")
    a[:, :7] = np.nan
    a[:, 40:55, 20:60] = 0.0  # outside the region
    lo = [float(np.nanmin(np.where(a[b] > 0, a[b], np.nan))) for b in range(2)]
    hi = [float(np.nanmax(a[b])) for b in range(2)]
    scale = [minmax_scale(lo[b], hi[b]) for b in range(2)] if scaled else None
    out = tmp_path / "s_saliency.tif"
    w = StreamingWriter(out, width=90, height=70, count=2, dtype="float32", crs=CRS_UTM, transform=TRANSFORM,
                        nodata=float("nan")).open()
    w.write(0, a[:, :33])
    w.write(33, a[:, 33:])
    w.finalize(scale, clamp=clamp)
    w.commit()
    with rasterio.open(out) as ds:
        for b in (1, 2):
            v = ds.read(b, masked=True).compressed().astype(np.float64)
            t = {k: float(x) for k, x in ds.tags(b).items() if k.startswith("STATISTICS_")}
            assert t["STATISTICS_MINIMUM"] == pytest.approx(v.min(), abs=1e-6)
            assert t["STATISTICS_MAXIMUM"] == pytest.approx(v.max(), abs=1e-6)
            assert t["STATISTICS_MEAN"] == pytest.approx(v.mean(), abs=1e-5)
            assert t["STATISTICS_STDDEV"] == pytest.approx(v.std(), abs=1e-5)
            assert t["STATISTICS_VALID_PERCENT"] == pytest.approx(100 * v.size / (90 * 70))

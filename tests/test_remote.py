"""Data where it lives, over real protocols on loopback (no mocks of rasterio or GDAL): COGs served
over HTTP with Range requests (a 500 the first time, a 404, a 403), an S3-compatible server (moto)
for s3:// in and out, a VRT mosaic with nodata gaps, JP2, and an --inputs-from list mixing every
kind. Every COG written is checked with rio-cogeo's cog_validate, every STAC document with pystac's
validation (schemas shipped, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from cloud_helpers import FAST, SIG, assert_same, assert_valid_outputs, make_cog, outputs, scene_array
from segxai_cli.explain import explain_scenes
from segxai_cli.raster.source import HttpSource, RasterSource, S3Source, StacItemSource, VsiSource
from servers.s3 import s3_server
from test_stac_io import S2, write_item


# ----------------------------------------------------------------------------- locations
def test_a_location_is_held_as_a_uri_and_shown_without_secrets():
    assert isinstance(RasterSource.of("https://h/a/b.tif?" + SIG), HttpSource)
    s = RasterSource.of("https://user:pw@h/a/b.tif?X-Amz-Signature=abc&x=1")
    assert s.gdal_path == "/vsicurl/https://user:pw@h/a/b.tif?X-Amz-Signature=abc&x=1"
    assert str(s) == "https://***@h/a/b.tif?X-Amz-Signature=***&x=***" and s.stem == "b"
    s3 = RasterSource.of("s3://bucket/dir/k.tif")
    assert isinstance(s3, S3Source) and s3.gdal_path == "/vsis3/bucket/dir/k.tif" and not s3.is_local
    assert isinstance(RasterSource.of("/vsigs/b/k.tif"), VsiSource)
    assert isinstance(RasterSource.of("items/x.json"), StacItemSource)
    assert RasterSource.of(Path("mosaic.vrt")).is_local and RasterSource.of("mosaic.vrt").stem == "mosaic"


# ----------------------------------------------------------------------------- HTTP
def test_cog_over_http_equals_the_local_file(tmp_path, www, local_ref, ckpt):
    url = f"{www.url}/scene.tif?{SIG}"
    www.fail_once["/scene.tif"] = 500  # the first request fails: retried
    run = explain_scenes([url], tmp_path / "out", str(ckpt), **FAST)
    assert run.ok, run.scenes[0].error
    assert_same(local_ref, "scene", tmp_path / "out", "scene")
    assert any(r[2].startswith("bytes=") for r in www.requests)  # read by ranges
    assert sum(1 for r in www.requests if r[1].startswith("/scene.tif")) >= 2  # the 500, then the retry
    rec = json.loads((tmp_path / "out" / "scene_saliency.json").read_text())
    assert rec["input"] == f"{www.url}/scene.tif?sig=***"
    assert_valid_outputs(tmp_path / "out")


def test_our_retry_gets_past_a_500_that_gdal_does_not_retry(tmp_path, www, ckpt, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # the environment wins over segxai's settings
    monkeypatch.setenv("SEGXAI_RETRY_DELAY", "0.05")
    www.fail_once["/scene.tif"] = 500
    run = explain_scenes([f"{www.url}/scene.tif?t=ourretry"], tmp_path / "out", str(ckpt), **FAST)
    assert run.ok, run.scenes[0].error
    assert sum(1 for r in www.requests if r[1].startswith("/scene.tif")) >= 2


def test_403_and_404_fail_at_once_naming_the_url_without_its_secret(tmp_path, www, ckpt):
    www.status["/denied.tif"] = 403
    run = explain_scenes([f"{www.url}/denied.tif?{SIG}", f"{www.url}/missing.tif?{SIG}"], tmp_path / "out",
                         str(ckpt), **FAST)
    errors = sorted(s.error for s in run.scenes)
    assert "access denied (HTTP 403)" in errors[0] and f"{www.url}/denied.tif?sig=***" in errors[0]
    assert "not found (HTTP 404)" in errors[1] and "missing.tif" in errors[1]
    assert "TOPSECRET" not in " ".join(errors)
    assert [r for r in www.requests if r[1].startswith("/denied")] and len(errors) == 2


# ----------------------------------------------------------------------------- VRT mosaic, JP2, refused formats
def write_mosaic(folder: Path, array: np.ndarray) -> Path:
    """Four tiles of ``array`` (one of them missing a corner: a gap) and a VRT mosaic of them."""
    from conftest import write_geotiff
    from rasterio.transform import from_origin

    _, h, w = array.shape
    hh, hw = h // 2, w // 2
    bands = {b: [] for b in range(1, 4)}
    for i, (r0, c0) in enumerate([(0, 0), (0, hw), (hh, 0), (hh, hw)]):
        tile = array[:, r0:r0 + hh, c0:c0 + hw]
        if i == 3:
            tile = tile[:, : hh - 12, : hw - 16]  # this tile does not reach the corner: a gap
        t = from_origin(500000.0 + c0 * 0.3, 5000000.0 - r0 * 0.3, 0.3, 0.3)
        write_geotiff(folder / f"t{i}.tif", tile, nodata=0, transform=t)
        for b in bands:
            bands[b].append(f'<ComplexSource><SourceFilename relativeToVRT="1">t{i}.tif</SourceFilename>'
                            f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{tile.shape[2]}" '
                            f'ySize="{tile.shape[1]}"/><DstRect xOff="{c0}" yOff="{r0}" xSize="{tile.shape[2]}" '
                            f'ySize="{tile.shape[1]}"/><NODATA>0</NODATA></ComplexSource>')
    crs = rasterio.crs.CRS.from_epsg(32633).to_wkt()
    xml = [f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>{crs}</SRS>'
           "<GeoTransform>500000.0, 0.3, 0.0, 5000000.0, 0.0, -0.3</GeoTransform>"]
    for b, srcs in bands.items():
        xml.append(f'<VRTRasterBand dataType="Byte" band="{b}"><NoDataValue>0</NoDataValue>{"".join(srcs)}</VRTRasterBand>')
    (folder / "mosaic.vrt").write_text("".join(xml) + "</VRTDataset>")
    return folder / "mosaic.vrt"


def test_vrt_mosaic_with_gaps_equals_the_merged_geotiff(tmp_path, ckpt):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    vrt = write_mosaic(tiles, scene_array(128, 144))
    merged = tmp_path / "merged.tif"
    rasterio.shutil.copy(vrt, merged, driver="GTiff", TILED="YES")
    with rasterio.open(vrt) as v, rasterio.open(merged) as m:
        assert (v.dataset_mask() == m.dataset_mask()).all() and not v.dataset_mask()[-5:, -5:].any()  # the gap
    a = explain_scenes([str(vrt)], tmp_path / "a", str(ckpt), **FAST)
    b = explain_scenes([str(merged)], tmp_path / "b", str(ckpt), **FAST)
    assert a.ok and b.ok
    assert_same(tmp_path / "a", "mosaic", tmp_path / "b", "merged")
    sal, pred = outputs(tmp_path / "a", "mosaic")
    assert np.isnan(sal[:, -5:, -5:]).all() and (pred[:, -5:, -5:] == 255).all()  # gaps stay nodata
    assert_valid_outputs(tmp_path / "a")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_jp2_is_read_and_png_refused_in_one_line(tmp_path, ckpt):
    arr = scene_array(64, 80)
    with rasterio.open(tmp_path / "s.jp2", "w", driver="JP2OpenJPEG", width=80, height=64, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=rasterio.transform.from_origin(500000, 5000000, 0.3, 0.3),
                       QUALITY=100, REVERSIBLE="YES") as dst:
        dst.write(arr)
    with rasterio.open(tmp_path / "p.png", "w", driver="PNG", width=80, height=64, count=3, dtype="uint8") as dst:
        dst.write(arr)
    run = explain_scenes([str(tmp_path / "s.jp2"), str(tmp_path / "p.png")], tmp_path / "out", str(ckpt),
                         **FAST)
    by = {s.input.name: s for s in run.scenes}
    assert by["s.jp2"].status == "done"
    assert by["p.png"].status == "failed" and "is a PNG file" in by["p.png"].error and "\n" not in by["p.png"].error


# ----------------------------------------------------------------------------- S3 in and out
def test_s3_in_and_out_with_skip_existing_against_the_bucket(tmp_path, monkeypatch, local_ref, www, ckpt):
    from segxai_cli.cloud import s3

    with s3_server(monkeypatch):
        s3.client().create_bucket(Bucket="bkt")
        s3.upload(www.root / "scene.tif", "s3://bkt/in/scene.tif")
        run = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(ckpt), **FAST)
        assert run.ok, run.scenes[0].error
        assert run.scenes[0].to_dict()["outputs"]["saliency"] == "s3://bkt/out/scene_saliency.tif"
        keys = sorted(k.rsplit("/", 1)[1] for k in s3.list_keys("s3://bkt/out/"))
        assert keys == ["catalog.json", "scene.stac.json", "scene_prediction.qml", "scene_prediction.tif",
                        "scene_prediction.tif.aux.xml", "scene_quicklook.png", "scene_quicklook_gradcam.png",
                        "scene_saliency.json", "scene_saliency.qml", "scene_saliency.tif", "scene_saliency_gradcam.qml",
                        "segxai_manifest.json", "segxai_scenes.csv"]  # no segxai.qgs: local output folders only
        got = tmp_path / "got"
        got.mkdir()
        for k in s3.list_keys("s3://bkt/out/"):
            (got / k.rsplit("/", 1)[1]).write_bytes(s3.get_bytes(k))
        assert_same(local_ref, "scene", got, "scene")
        assert_valid_outputs(got)
        assert json.loads((got / "scene_saliency.json").read_text())["input"] == "s3://bkt/in/scene.tif"
        again = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(ckpt), skip_existing=True, **FAST)
        assert [s.status for s in again.scenes] == ["skipped"]
        refused = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(ckpt), **FAST)
        assert "s3://bkt/out/" in refused.scenes[0].error and "exists" in refused.scenes[0].error
        s3.delete("s3://bkt/out/scene_saliency.json")  # the completion marker gone: incomplete, redone
        redo = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(ckpt), skip_existing=True, **FAST)
        assert [s.status for s in redo.scenes] == ["done"] and s3.exists("s3://bkt/out/scene_saliency.json")


def test_a_scene_that_fails_before_its_record_leaves_no_object(tmp_path, monkeypatch, www, ckpt):
    from segxai_cli import faults
    from segxai_cli.cloud import s3

    with s3_server(monkeypatch):
        s3.client().create_bucket(Bucket="bkt")
        monkeypatch.setenv("SEGXAI_FAULT", "record:oserror")
        faults.reset()
        run = explain_scenes([str(www.root / "scene.tif")], "s3://bkt/out", str(ckpt), **FAST)
        assert not run.ok
        assert s3.list_keys("s3://bkt/out/") == []


def test_missing_bucket_fails_before_any_work(tmp_path, monkeypatch, www, ckpt):
    from segxai_cli.errors import OutputError

    with s3_server(monkeypatch):
        with pytest.raises(OutputError, match="s3://nobucket/out"):
            explain_scenes([str(www.root / "scene.tif")], "s3://nobucket/out", str(ckpt), **FAST)


# ----------------------------------------------------------------------------- everything in one list
def test_inputs_from_mixing_every_kind(tmp_path, monkeypatch, www, bands_folder, ckpt):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app
    from segxai_cli.cloud import s3

    vrt = write_mosaic(www.root, scene_array(96, 112, seed=5))  # served: tiles read relative to the VRT's URL
    write_item(bands_folder, {k: S2[k] for k in ("B02", "B03", "B04")}, "rgb_item")
    make_cog(www.root / "other.tif", scene_array(seed=9))
    with s3_server(monkeypatch):
        s3.client().create_bucket(Bucket="bkt")
        s3.upload(www.root / "other.tif", "s3://bkt/in/s3scene.tif")
        lst = tmp_path / "list.txt"
        lst.write_text("\n".join([
            "# one location a line", str(www.root / "scene.tif"), "", f"{www.url}/other.tif?{SIG}",
            f"{www.url}/{vrt.name}", "s3://bkt/in/s3scene.tif", str(bands_folder / "rgb_item.json"),
            "   # indented comment"]) + "\n")
        res = CliRunner().invoke(app, ["explain", "--inputs-from", str(lst), "-o", str(tmp_path / "out"),
                                       "-m", str(ckpt), "--tile-size", "64", "--assets", "B04,B03,B02", "--json", "-q"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert summary["done"] == 5 and summary["failed"] == 0
    assert_valid_outputs(tmp_path / "out")
    assert "TOPSECRET" not in res.output


# ----------------------------------------------------------------------------- reads, threads, logs
def test_a_read_failing_mid_scene_is_retried_on_a_fresh_handle(tmp_path, www, local_ref, ckpt, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # only segxai's retry can save it
    monkeypatch.setenv("SEGXAI_RETRY_DELAY", "0.05")
    www.fail_at["/scene.tif"] = {2, 3}
    run = explain_scenes([f"{www.url}/scene.tif?t=midscene"], tmp_path / "out", str(ckpt), **FAST)
    assert run.ok, run.scenes[0].error
    assert www.gets["/scene.tif"] > 3
    assert_same(local_ref, "scene", tmp_path / "out", "scene")


def test_http_settings_reach_the_reader_thread_of_a_scene_run_off_the_main_thread(tmp_path, www, ckpt):
    import threading

    done = {}
    t = threading.Thread(target=lambda: done.update(run=explain_scenes(
        [f"{www.url}/scene.tif?t=thread"], tmp_path / "out", str(ckpt), **FAST)))
    t.start()
    t.join()
    assert done["run"].ok
    assert www.gets["/scene.tif"] >= 1  # read over HTTP (a new URL: nothing cached)
    # GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR in every thread that opens the file: no directory listing
    assert [r for r in www.requests if not r[1].startswith("/scene.tif")] == []


def test_cli_logs_never_show_a_signature(tmp_path, www, ckpt):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    www.fail_once["/scene.tif"] = 500  # GDAL logs a warning quoting the URL (a new URL: not cached)
    www.status["/denied.tif"] = 403
    res = CliRunner().invoke(app, ["explain", f"{www.url}/scene.tif?{SIG}&t=cli", f"{www.url}/denied.tif?{SIG}", "-o",
                                   str(tmp_path / "out"), "-m", str(ckpt), "--tile-size", "64", "-v"])
    assert res.exit_code == 1
    assert "sig=***" in res.output and "TOPSECRET" not in res.output


def test_band_names_resolve_against_descriptions(tmp_path, ckpt):
    from conftest import write_geotiff

    arr = scene_array(seed=4)
    named = write_geotiff(tmp_path / "named.tif", arr, nodata=0)
    with rasterio.open(named, "r+") as ds:
        for i, n in enumerate(["red", "green", "blue"], 1):
            ds.set_band_description(i, n)
    write_geotiff(tmp_path / "bgr.tif", arr[::-1], nodata=0)
    a = explain_scenes([str(named)], tmp_path / "a", str(ckpt), bands="blue,green,red", **FAST)
    b = explain_scenes([str(tmp_path / "bgr.tif")], tmp_path / "b", str(ckpt), **FAST)
    assert a.ok and b.ok
    assert_same(tmp_path / "a", "named", tmp_path / "b", "bgr")
    bad = explain_scenes([str(tmp_path / "bgr.tif")], tmp_path / "c", str(ckpt), bands="nir,green,blue", **FAST)
    assert "no band named 'nir'" in bad.scenes[0].error

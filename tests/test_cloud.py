"""Data where it lives, over real protocols on loopback (no mocks of rasterio or GDAL): COGs served
over HTTP with Range requests (a 500 the first time, a 404, a 403), an S3-compatible server (moto)
for s3:// in and out, a VRT mosaic with nodata gaps, STAC items with per-band assets, JP2, and an
--inputs-from list mixing all of them. Every COG written is checked with rio-cogeo's cog_validate,
every STAC document with pystac's validation (schemas shipped, offline)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rio_cogeo.cogeo import cog_validate

from segxai_cli.explain import explain_scenes
from segxai_cli.raster.source import HttpSource, RasterSource, S3Source, StacItemSource, VsiSource
from servers.http_range import RangeServer
from servers.s3 import SECRET, s3_server
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


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """The tests' tiny U-Net as a checkpoint, once for the module (every test only reads it)."""
    import torch
    from conftest import tiny_model_info

    from segxai_cli.model.checkpoint import save_checkpoint
    from segxai_cli.model.families import build_model

    torch.manual_seed(0)
    info = tiny_model_info()
    return save_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt", build_model(info).eval(), info)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
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
def local_ref(tmp_path_factory, server, tiny_checkpoint):
    """The local explanation of the served file (what every remote read must reproduce)."""
    out = tmp_path_factory.mktemp("ref")
    run = explain_scenes([str(server.root / "scene.tif")], out, str(tiny_checkpoint), **FAST)
    assert run.ok
    return out


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
def test_cog_over_http_equals_the_local_file(tmp_path, www, local_ref, tiny_checkpoint):
    url = f"{www.url}/scene.tif?{SIG}"
    www.fail_once["/scene.tif"] = 500  # the first request fails: retried
    run = explain_scenes([url], tmp_path / "out", str(tiny_checkpoint), **FAST)
    assert run.ok, run.scenes[0].error
    assert_same(local_ref, "scene", tmp_path / "out", "scene")
    assert any(r[2].startswith("bytes=") for r in www.requests)  # read by ranges
    assert sum(1 for r in www.requests if r[1].startswith("/scene.tif")) >= 2  # the 500, then the retry
    rec = json.loads((tmp_path / "out" / "scene_saliency.json").read_text())
    assert rec["input"] == f"{www.url}/scene.tif?sig=***"
    assert_valid_outputs(tmp_path / "out")


def test_our_retry_gets_past_a_500_that_gdal_does_not_retry(tmp_path, www, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # the environment wins over segxai's settings
    monkeypatch.setenv("SEGXAI_RETRY_DELAY", "0.05")
    www.fail_once["/scene.tif"] = 500
    run = explain_scenes([f"{www.url}/scene.tif?t=ourretry"], tmp_path / "out", str(tiny_checkpoint), **FAST)
    assert run.ok, run.scenes[0].error
    assert sum(1 for r in www.requests if r[1].startswith("/scene.tif")) >= 2


def test_403_and_404_fail_at_once_naming_the_url_without_its_secret(tmp_path, www, tiny_checkpoint):
    www.status["/denied.tif"] = 403
    run = explain_scenes([f"{www.url}/denied.tif?{SIG}", f"{www.url}/missing.tif?{SIG}"], tmp_path / "out",
                         str(tiny_checkpoint), **FAST)
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


def test_vrt_mosaic_with_gaps_equals_the_merged_geotiff(tmp_path, tiny_checkpoint):
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    vrt = write_mosaic(tiles, scene_array(128, 144))
    merged = tmp_path / "merged.tif"
    rasterio.shutil.copy(vrt, merged, driver="GTiff", TILED="YES")
    with rasterio.open(vrt) as v, rasterio.open(merged) as m:
        assert (v.dataset_mask() == m.dataset_mask()).all() and not v.dataset_mask()[-5:, -5:].any()  # the gap
    a = explain_scenes([str(vrt)], tmp_path / "a", str(tiny_checkpoint), **FAST)
    b = explain_scenes([str(merged)], tmp_path / "b", str(tiny_checkpoint), **FAST)
    assert a.ok and b.ok
    assert_same(tmp_path / "a", "mosaic", tmp_path / "b", "merged")
    sal, pred = outputs(tmp_path / "a", "mosaic")
    assert np.isnan(sal[:, -5:, -5:]).all() and (pred[:, -5:, -5:] == 255).all()  # gaps stay nodata
    assert_valid_outputs(tmp_path / "a")


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_jp2_is_read_and_png_refused_in_one_line(tmp_path, tiny_checkpoint):
    arr = scene_array(64, 80)
    with rasterio.open(tmp_path / "s.jp2", "w", driver="JP2OpenJPEG", width=80, height=64, count=3, dtype="uint8",
                       crs="EPSG:32633", transform=rasterio.transform.from_origin(500000, 5000000, 0.3, 0.3),
                       QUALITY=100, REVERSIBLE="YES") as dst:
        dst.write(arr)
    with rasterio.open(tmp_path / "p.png", "w", driver="PNG", width=80, height=64, count=3, dtype="uint8") as dst:
        dst.write(arr)
    run = explain_scenes([str(tmp_path / "s.jp2"), str(tmp_path / "p.png")], tmp_path / "out", str(tiny_checkpoint),
                         **FAST)
    by = {s.input.name: s for s in run.scenes}
    assert by["s.jp2"].status == "done"
    assert by["p.png"].status == "failed" and "is a PNG file" in by["p.png"].error and "\n" not in by["p.png"].error


# ----------------------------------------------------------------------------- STAC items
def write_item(folder: Path, assets: dict[str, tuple[str, str, int]], item_id: str = "S2_item") -> Path:
    """A STAC Item (pystac) whose assets are separate single-band COGs: key → (file, common name, pixel factor)."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension

    item = pystac.Item(item_id, {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
                       [0, 0, 1, 1], pystac.utils.str_to_datetime("2024-06-01T10:00:00Z"), {})
    EOExtension.add_to(item)
    for key, (file, common, _) in assets.items():
        a = pystac.Asset(file, media_type=pystac.MediaType.COG, roles=["data"])
        item.add_asset(key, a)
        EOExtension.ext(a).bands = [Band.create(name=key, common_name=common)]
    item.add_asset("thumbnail", pystac.Asset("thumb.png", media_type=pystac.MediaType.PNG, roles=["thumbnail"]))
    path = folder / f"{item_id}.json"
    path.write_text(json.dumps(item.to_dict(include_self_link=False)))
    return path


@pytest.fixture
def bands_folder(tmp_path):
    """B02/B03/B04 at 0.3 m, B8A at 0.6 m (same footprint), and the 3-band reference stack B04,B03,B02."""
    from conftest import write_geotiff

    d = tmp_path / "item"
    d.mkdir()
    arr = scene_array(96, 112, seed=3)
    for i, key in enumerate(["B04", "B03", "B02"]):
        make_cog(d / f"{key}.tif", arr[i])
    make_cog(d / "B8A.tif", arr[0, ::2, ::2], pixel_size=0.6)
    write_geotiff(tmp_path / "stack.tif", arr, nodata=0)
    return d


S2 = {"B02": ("B02.tif", "blue", 1), "B03": ("B03.tif", "green", 1), "B04": ("B04.tif", "red", 1),
      "B8A": ("B8A.tif", "nir08", 2)}


def test_stac_item_with_per_band_assets_equals_the_stacked_geotiff(tmp_path, bands_folder, tiny_checkpoint):
    item = write_item(bands_folder, S2)
    ref = explain_scenes([str(tmp_path / "stack.tif")], tmp_path / "ref", str(tiny_checkpoint), **FAST)
    by_assets = explain_scenes([str(item)], tmp_path / "a", str(tiny_checkpoint), assets="B04,B03,B02", **FAST)
    by_names = explain_scenes([str(item)], tmp_path / "b", str(tiny_checkpoint), bands="red,green,blue", **FAST)
    assert ref.ok and by_assets.ok and by_names.ok, by_names.scenes[0].error
    assert_same(tmp_path / "ref", "stack", tmp_path / "a", "S2_item")
    assert_same(tmp_path / "ref", "stack", tmp_path / "b", "S2_item")
    out_item = json.loads((tmp_path / "a" / "S2_item.stac.json").read_text())
    assert out_item["properties"]["datetime"] == "2024-06-01T10:00:00Z"
    assert out_item["links"][0]["rel"] == "derived_from" and out_item["links"][0]["href"].endswith("S2_item.json")
    assert_valid_outputs(tmp_path / "a")


def test_stac_item_over_http_with_relative_asset_links(tmp_path, www, bands_folder, tiny_checkpoint):
    for f in bands_folder.glob("B0*.tif"):
        (www.root / f.name).write_bytes(f.read_bytes())
    write_item(www.root, {k: S2[k] for k in ("B02", "B03", "B04")}, "remote_item")
    www.fail_once["/remote_item.json"] = 500  # the document itself is fetched with retries too
    run = explain_scenes([f"{www.url}/remote_item.json?{SIG}"], tmp_path / "out", str(tiny_checkpoint),
                         bands="red,green,blue", **FAST)
    assert run.ok, run.scenes[0].error
    assert {"/B04.tif", "/B03.tif", "/B02.tif"} <= {r[1] for r in www.requests}  # resolved against the URL
    assert explain_scenes([str(tmp_path / "stack.tif")], tmp_path / "ref", str(tiny_checkpoint), **FAST).ok
    assert_same(tmp_path / "ref", "stack", tmp_path / "out", "remote_item")
    assert_valid_outputs(tmp_path / "out")


def test_stac_assets_on_a_coarser_grid_are_resampled_to_the_finest(tmp_path, bands_folder):
    item = write_item(bands_folder, S2)
    src = StacItemSource.expand(str(item), ("B04", "B03", "B8A"))[0]
    with rasterio.open(src.gdal_path) as ds:
        assert ds.shape == (96, 112) and ds.count == 3 and ds.tags(3)["stac_asset"] == "B8A"
        nir = ds.read(3)
    with rasterio.open(bands_folder / "B8A.tif") as b:
        np.testing.assert_array_equal(nir[::2, ::2], b.read(1))  # nearest neighbour: values unchanged


def test_stac_selection_errors_are_one_line(tmp_path, bands_folder, tiny_checkpoint):
    item = write_item(bands_folder, S2)
    run = explain_scenes([str(item)], tmp_path / "o1", str(tiny_checkpoint), **FAST)
    assert "4 raster assets (B02, B03, B04, B8A)" in run.scenes[0].error and "--assets" in run.scenes[0].error
    run = explain_scenes([str(item)], tmp_path / "o2", str(tiny_checkpoint), assets="B04,B3,B02", **FAST)
    assert "no asset B3" in run.scenes[0].error
    run = explain_scenes([str(item)], tmp_path / "o3", str(tiny_checkpoint), bands="red,green,violet", **FAST)
    assert "no band named 'violet'" in run.scenes[0].error


def test_item_collection_gives_one_scene_per_item(tmp_path, bands_folder, tiny_checkpoint):
    import pystac

    items = [pystac.Item.from_file(str(write_item(bands_folder, S2, f"it{i}"))) for i in range(2)]
    for it in items:
        for a in it.assets.values():
            a.href = str(bands_folder / Path(a.href).name)
    coll = tmp_path / "coll.json"
    coll.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    run = explain_scenes([str(coll)], tmp_path / "out", str(tiny_checkpoint), assets="B04,B03,B02", **FAST)
    assert run.ok and sorted(s.input.stem for s in run.scenes) == ["it0", "it1"]
    cat = json.loads((tmp_path / "out" / "catalog.json").read_text())
    assert sorted(lk["href"] for lk in cat["links"] if lk["rel"] == "item") == ["./it0.stac.json", "./it1.stac.json"]
    assert_valid_outputs(tmp_path / "out")


# ----------------------------------------------------------------------------- S3 in and out
def test_s3_in_and_out_with_skip_existing_against_the_bucket(tmp_path, monkeypatch, local_ref, www, tiny_checkpoint):
    from segxai_cli.cloud import s3

    with s3_server(monkeypatch):
        s3.client().create_bucket(Bucket="bkt")
        s3.upload(www.root / "scene.tif", "s3://bkt/in/scene.tif")
        run = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(tiny_checkpoint), **FAST)
        assert run.ok, run.scenes[0].error
        assert run.scenes[0].to_dict()["outputs"]["saliency"] == "s3://bkt/out/scene_saliency.tif"
        keys = sorted(k.rsplit("/", 1)[1] for k in s3.list_keys("s3://bkt/out/"))
        assert keys == ["catalog.json", "scene.stac.json", "scene_prediction.qml", "scene_prediction.tif",
                        "scene_prediction.tif.aux.xml", "scene_saliency.json", "scene_saliency.qml", "scene_saliency.tif",
                        "segxai_manifest.json", "segxai_scenes.csv"]
        got = tmp_path / "got"
        got.mkdir()
        for k in s3.list_keys("s3://bkt/out/"):
            (got / k.rsplit("/", 1)[1]).write_bytes(s3.get_bytes(k))
        assert_same(local_ref, "scene", got, "scene")
        assert_valid_outputs(got)
        assert json.loads((got / "scene_saliency.json").read_text())["input"] == "s3://bkt/in/scene.tif"
        again = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(tiny_checkpoint), skip_existing=True, **FAST)
        assert [s.status for s in again.scenes] == ["skipped"]
        refused = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(tiny_checkpoint), **FAST)
        assert "s3://bkt/out/" in refused.scenes[0].error and "exists" in refused.scenes[0].error
        s3.delete("s3://bkt/out/scene_saliency.json")  # the completion marker gone: incomplete, redone
        redo = explain_scenes(["s3://bkt/in/scene.tif"], "s3://bkt/out", str(tiny_checkpoint), skip_existing=True, **FAST)
        assert [s.status for s in redo.scenes] == ["done"] and s3.exists("s3://bkt/out/scene_saliency.json")


def test_a_scene_that_fails_before_its_record_leaves_no_object(tmp_path, monkeypatch, www, tiny_checkpoint):
    from segxai_cli import faults
    from segxai_cli.cloud import s3

    with s3_server(monkeypatch):
        s3.client().create_bucket(Bucket="bkt")
        monkeypatch.setenv("SEGXAI_FAULT", "record:oserror")
        faults.reset()
        run = explain_scenes([str(www.root / "scene.tif")], "s3://bkt/out", str(tiny_checkpoint), **FAST)
        assert not run.ok
        assert s3.list_keys("s3://bkt/out/") == []


def test_missing_bucket_fails_before_any_work(tmp_path, monkeypatch, www, tiny_checkpoint):
    from segxai_cli.errors import OutputError

    with s3_server(monkeypatch):
        with pytest.raises(OutputError, match="s3://nobucket/out"):
            explain_scenes([str(www.root / "scene.tif")], "s3://nobucket/out", str(tiny_checkpoint), **FAST)


# ----------------------------------------------------------------------------- everything in one list
def test_inputs_from_mixing_every_kind(tmp_path, monkeypatch, www, bands_folder, tiny_checkpoint):
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
                                       "-m", str(tiny_checkpoint), "--tile-size", "64", "--assets", "B04,B03,B02", "--json", "-q"])
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout)
        assert summary["done"] == 5 and summary["failed"] == 0
    assert_valid_outputs(tmp_path / "out")
    assert "TOPSECRET" not in res.output


# ----------------------------------------------------------------------------- reads, threads, logs
def test_a_read_failing_mid_scene_is_retried_on_a_fresh_handle(tmp_path, www, local_ref, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "0")  # only segxai's retry can save it
    monkeypatch.setenv("SEGXAI_RETRY_DELAY", "0.05")
    www.fail_at["/scene.tif"] = {2, 3}
    run = explain_scenes([f"{www.url}/scene.tif?t=midscene"], tmp_path / "out", str(tiny_checkpoint), **FAST)
    assert run.ok, run.scenes[0].error
    assert www.gets["/scene.tif"] > 3
    assert_same(local_ref, "scene", tmp_path / "out", "scene")


def test_http_settings_reach_the_reader_thread_of_a_scene_run_off_the_main_thread(tmp_path, www, tiny_checkpoint):
    import threading

    done = {}
    t = threading.Thread(target=lambda: done.update(run=explain_scenes(
        [f"{www.url}/scene.tif?t=thread"], tmp_path / "out", str(tiny_checkpoint), **FAST)))
    t.start()
    t.join()
    assert done["run"].ok
    assert www.gets["/scene.tif"] >= 1  # read over HTTP (a new URL: nothing cached)
    # GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR in every thread that opens the file: no directory listing
    assert [r for r in www.requests if not r[1].startswith("/scene.tif")] == []


def test_cli_logs_never_show_a_signature(tmp_path, www, tiny_checkpoint):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    www.fail_once["/scene.tif"] = 500  # GDAL logs a warning quoting the URL (a new URL: not cached)
    www.status["/denied.tif"] = 403
    res = CliRunner().invoke(app, ["explain", f"{www.url}/scene.tif?{SIG}&t=cli", f"{www.url}/denied.tif?{SIG}", "-o",
                                   str(tmp_path / "out"), "-m", str(tiny_checkpoint), "--tile-size", "64", "-v"])
    assert res.exit_code == 1
    assert "sig=***" in res.output and "TOPSECRET" not in res.output


def test_band_names_resolve_against_descriptions(tmp_path, tiny_checkpoint):
    from conftest import write_geotiff

    arr = scene_array(seed=4)
    named = write_geotiff(tmp_path / "named.tif", arr, nodata=0)
    with rasterio.open(named, "r+") as ds:
        for i, n in enumerate(["red", "green", "blue"], 1):
            ds.set_band_description(i, n)
    write_geotiff(tmp_path / "bgr.tif", arr[::-1], nodata=0)
    a = explain_scenes([str(named)], tmp_path / "a", str(tiny_checkpoint), bands="blue,green,red", **FAST)
    b = explain_scenes([str(tmp_path / "bgr.tif")], tmp_path / "b", str(tiny_checkpoint), **FAST)
    assert a.ok and b.ok
    assert_same(tmp_path / "a", "named", tmp_path / "b", "bgr")
    bad = explain_scenes([str(tmp_path / "bgr.tif")], tmp_path / "c", str(tiny_checkpoint), bands="nir,green,blue", **FAST)
    assert "no band named 'nir'" in bad.scenes[0].error


def test_outputs_carry_exact_band_statistics(local_ref):
    for name in ("scene_saliency.tif", "scene_prediction.tif"):
        with rasterio.open(local_ref / name) as ds:
            v = ds.read(1, masked=True).compressed().astype(np.float64)
            t = ds.tags(1)
            assert float(t["STATISTICS_MINIMUM"]) == pytest.approx(v.min(), abs=1e-6)
            assert float(t["STATISTICS_MAXIMUM"]) == pytest.approx(v.max(), abs=1e-6)
            assert float(t["STATISTICS_MEAN"]) == pytest.approx(v.mean(), abs=1e-5)
            assert float(t["STATISTICS_STDDEV"]) == pytest.approx(v.std(), abs=1e-5)
            assert float(t["STATISTICS_VALID_PERCENT"]) == pytest.approx(100 * v.size / (ds.width * ds.height))


def test_invalid_stac_is_caught_by_the_offline_validation(tmp_path, local_ref):
    from pystac.errors import STACValidationError

    item = json.loads((local_ref / "scene.stac.json").read_text())
    item["properties"]["proj:shape"] = "96x112"
    (tmp_path / "bad.stac.json").write_text(json.dumps(item))
    with pytest.raises(STACValidationError):
        validate_file(tmp_path / "bad.stac.json")

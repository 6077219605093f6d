"""explain_scene / explain_scenes and the pipeline on real (tiny) GeoTIFFs with a tiny model."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from conftest import CRS, ORIGIN
from segxai_cli.errors import InputError, OutputError, SegxaiError
from segxai_cli.cam.registry import resolve_methods
from segxai_cli.explain import explain_scene, explain_scenes
from segxai_cli.raster.inputs import expand_paths
from segxai_cli.raster.writer import cog_problems
from segxai_cli.synth import generate_scene
from segxai_cli.tiling.grid import TileGrid
from segxai_cli.explain.pipeline import PipelineConfig, run_scene


def _scene(make_geotiff, name="scene.tif", size=(160, 200), seed=1, **kw):
    h, w = size
    img, mask, _ = generate_scene(w, h, seed, **{k: v for k, v in kw.items() if k in ("nodata_border", "dtype")})
    extra = {k: v for k, v in kw.items() if k not in ("nodata_border", "dtype")}
    if kw.get("nodata_border"):
        extra.setdefault("nodata", 0)
    return make_geotiff(name, img, **extra), mask


def _collect(path, model, info, **cfg_kw):
    out = {}
    cfg = PipelineConfig(tile=64, overlap=16, bidx=[1, 2, 3], stats=info.band_stats, n_classes=info.classes, **cfg_kw)
    stats = run_scene(path, model, cfg, sink=lambda r, s, p: out.__setitem__(r, (s, p)))
    sal = np.concatenate([out[k][0] for k in sorted(out)], axis=1)
    pred = np.concatenate([out[k][1] for k in sorted(out)], axis=0)
    return sal, pred, stats


# ----------------------------------------------------------------------------- outputs
def test_outputs_are_georeferenced_cogs_with_nodata(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(200, 230), nodata_border=True)
    r = explain_scene(scene, tmp_path / "out", model=tiny_model, methods=["gradcam", "hirescam"])
    assert r.status == "done"
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["catalog.json", "scene.stac.json", "scene_prediction.qml", "scene_prediction.tif",
                     "scene_prediction.tif.aux.xml", "scene_quicklook.png", "scene_quicklook_gradcam.png",
                     "scene_quicklook_hirescam.png", "scene_saliency.json", "scene_saliency.qml", "scene_saliency.tif",
                     "scene_saliency_gradcam.qml", "scene_saliency_hirescam.qml", "segxai.qgs", "segxai_manifest.json",
                     "segxai_scenes.csv"]
    with rasterio.open(scene) as src, rasterio.open(r.saliency) as sal, rasterio.open(r.prediction) as pred:
        for out in (sal, pred):
            assert out.crs == src.crs and out.transform == src.transform
            assert (out.width, out.height) == (src.width, src.height)
            assert cog_problems(out.name) == []
            assert cog_validate(out.name, quiet=True)[0]  # rio-cogeo agrees
        invalid = src.dataset_mask() == 0
        assert invalid.any() and (~invalid).any()
        s = sal.read()
        p = pred.read(1)
        assert sal.descriptions == ("gradcam", "hirescam")
        tags = sal.tags()
        assert tags["methods"] == "gradcam,hirescam" and tags["normalization"] == "scene"
        assert tags["layer"] == "decoder.last" and tags["target_class_name"] == "building"
        assert tags["segxai_version"]
        assert np.isnan(s[:, invalid]).all() and not np.isnan(s[:, ~invalid]).any()
        assert np.nanmin(s) >= 0 and np.nanmax(s) <= 1 and np.nanmax(s) > 0.99
        assert (p[invalid] == 255).all() and (p[~invalid] < 2).all()
        # the palette (from the .aux.xml sidecar): the background class transparent, buildings red
        assert pred.colormap(1)[0] == (0, 0, 0, 0) and pred.colormap(1)[1] == (230, 50, 50, 255)
    rec = json.loads(r.outputs.record.read_text())
    assert rec["stats"]["tiles"] == r.stats.tiles and rec["options"]["methods"] == ["gradcam", "hirescam"]
    csv_lines = (tmp_path / "out" / "segxai_scenes.csv").read_text().splitlines()
    assert len(csv_lines) == 2 and "mean_gradcam" in csv_lines[0] and "megapixels_per_s" in csv_lines[0]


def test_blending_has_no_seams(tmp_path, make_geotiff, tiny_model):
    """Mean |gradient| across window borders within 1.5x of elsewhere (hard averaging: ~2.4x)."""
    model, info = tiny_model
    scene, _ = _scene(make_geotiff, size=(384, 384), seed=1)
    grid = TileGrid(384, 384, 64, 16)

    def seam_ratio(sal):
        s = (sal - sal.min()) / (sal.max() - sal.min())
        gx, gy = np.abs(np.diff(s, axis=1)), np.abs(np.diff(s, axis=0))
        bx = np.zeros(gx.shape[1], bool)
        by = np.zeros(gy.shape[0], bool)
        for c in grid.cols:
            for e in (c, c + grid.tile):
                if 0 < e < 384:
                    bx[e - 1] = True
        for r in grid.rows:
            for e in (r, r + grid.tile):
                if 0 < e < 384:
                    by[e - 1] = True
        border = np.concatenate([gx[:, bx].ravel(), gy[by].ravel()])
        other = np.concatenate([gx[:, ~bx].ravel(), gy[~by].ravel()])
        return border.mean() / other.mean()

    sal, _, _ = _collect(scene, model, info, methods=["gradcam"])
    flat, _, _ = _collect(scene, model, info, methods=["gradcam"], blend="flat")
    assert seam_ratio(sal[0]) < 1.5
    assert seam_ratio(flat[0]) > seam_ratio(sal[0])  # the measure does see seams when they exist


@pytest.mark.parametrize("size", [(40, 50), (64, 64), (128, 192), (100, 64)])
def test_every_pixel_covered_small_and_exact_multiple_scenes(make_geotiff, tiny_model, size):
    model, info = tiny_model
    scene, _ = _scene(make_geotiff, size=size)
    sal, pred, stats = _collect(scene, model, info, methods=["gradcam"])
    assert sal.shape == (1, *size) and pred.shape == size
    assert not np.isnan(sal).any() and (pred < 2).all()
    assert stats.valid_pixels == stats.computed_pixels == size[0] * size[1]
    assert stats.tiles == len(TileGrid(size[1], size[0], 64, 16))


def test_predict_only_matches_explain_prediction(make_geotiff, tiny_model):
    """The prediction comes from the engine's own forward (hook), identical to a plain forward."""
    model, info = tiny_model
    scene, _ = _scene(make_geotiff, size=(100, 130))
    _, pred_explain, _ = _collect(scene, model, info, methods=["gradcam"])
    sal, pred_plain, stats = _collect(scene, model, info, methods=[])
    assert sal.shape[0] == 0
    np.testing.assert_array_equal(pred_explain, pred_plain)


def test_normalize_modes(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(96, 96))
    raw = explain_scene(scene, tmp_path / "raw", model=tiny_model, normalize="none")
    tile = explain_scene(scene, tmp_path / "tile", model=tiny_model, normalize="tile")
    with rasterio.open(raw.saliency) as a, rasterio.open(tile.saliency) as b:
        assert a.tags()["normalization"] == "none" and b.tags()["normalization"] == "tile"
        ra = a.read(1)
        assert np.isclose(ra.max(), raw.stats.maximum[0], rtol=1e-5)
        assert 0 <= b.read(1).min() and b.read(1).max() <= 1 + 1e-6


def test_uint16_and_float_scenes(tmp_path, make_geotiff, tiny_model):
    img, _, _ = generate_scene(80, 70, 2, dtype="uint16")
    s16 = make_geotiff("s16.tif", img)
    f32 = make_geotiff("f32.tif", (img / 16.0).astype("float32"))
    for s in (s16, f32):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = explain_scene(s, tmp_path / "out", model=tiny_model)
        assert r.status == "done"


# ----------------------------------------------------------------------------- regions
def test_region_mask_empty_gives_zero_saliency_without_warnings(tmp_path, make_geotiff, tiny_model):
    scene, mask = _scene(make_geotiff, size=(96, 96))
    empty = make_geotiff("empty_mask.tif", np.zeros((96, 96), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the engine's per-tile "empty region" warning must not leak
        r = explain_scene(scene, tmp_path / "out", model=tiny_model, region_mask=empty)
    assert r.stats.tiles_empty_region == r.stats.tiles_computed > 0
    with rasterio.open(r.saliency) as src:
        assert np.all(src.read(1) == 0)
    part = make_geotiff("part_mask.tif", np.pad(np.ones((20, 20), np.uint8), ((10, 66), (10, 66))))
    r2 = explain_scene(scene, tmp_path / "out2", model=tiny_model, region_mask=part)
    with rasterio.open(r2.saliency) as src:
        assert src.read(1).max() > 0
        assert "mask:" in src.tags()["region"]


def test_region_mask_on_another_grid_is_refused(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(96, 96))
    bad = make_geotiff("bad_mask.tif", np.ones((50, 50), np.uint8))
    with pytest.raises(InputError, match="pixel grid"):
        explain_scene(scene, tmp_path / "out", model=tiny_model, region_mask=bad)


def test_vector_region_explains_only_windows_it_touches(tmp_path, make_geotiff, tiny_model):
    import fiona

    scene, _ = _scene(make_geotiff, size=(192, 192))
    x0, y0 = ORIGIN[0] + 10 * 0.3, ORIGIN[1] - 10 * 0.3  # a 20 x 20 px square near the top-left corner
    ring = [(x0, y0), (x0 + 6, y0), (x0 + 6, y0 - 6), (x0, y0 - 6), (x0, y0)]
    vec = tmp_path / "objects.gpkg"
    schema = {"geometry": "Polygon", "properties": {"id": "int"}}
    with fiona.open(vec, "w", driver="GPKG", schema=schema, crs=CRS) as dst:
        dst.write({"geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {"id": 1}})
    r = explain_scene(scene, tmp_path / "out", model=tiny_model, vector=vec)
    assert 0 < r.stats.tiles_computed < r.stats.tiles
    assert r.stats.tiles_outside_region == r.stats.tiles - r.stats.tiles_computed
    with rasterio.open(r.saliency) as s, rasterio.open(r.prediction) as p:
        sal, pred = s.read(1), p.read(1)
    assert np.all(sal[150:, 150:] == 0) and np.all(pred[150:, 150:] == 255)  # not computed: zero / nodata
    assert sal[:64, :64].max() > 0
    # the same region as a bbox in map coordinates
    rb = explain_scene(scene, tmp_path / "out_bbox", model=tiny_model, bbox=(x0, y0 - 6, x0 + 6, y0))
    assert rb.stats.tiles_computed == r.stats.tiles_computed


def test_only_one_region_source(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(64, 64))
    with pytest.raises(SegxaiError, match="at most one region"):
        explain_scene(scene, tmp_path / "o", model=tiny_model, region_mask=scene, bbox=(0, 0, 1, 1))


# ----------------------------------------------------------------------------- bad inputs
def test_scene_without_crs_warns_and_keeps_pixel_grid(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(64, 80), crs=None)
    with pytest.warns(UserWarning, match="no CRS"):
        warnings.simplefilter("always")
        r = explain_scene(scene, tmp_path / "out", model=tiny_model)
    assert any("no CRS" in w for w in r.warnings)
    with rasterio.open(r.saliency) as out, rasterio.open(scene) as src:
        assert out.crs is None and out.transform == src.transform


def test_band_count_the_model_does_not_take(tmp_path, make_geotiff, tiny_model):
    one = make_geotiff("gray.tif", np.full((64, 64), 100, np.uint8))
    with pytest.raises(InputError, match=r"has 1 band\(s\) but the model takes 3"):
        explain_scene(one, tmp_path / "out", model=tiny_model)
    with pytest.raises(SegxaiError, match="the model takes 3 band"):
        explain_scene(one, tmp_path / "out", model=tiny_model, bands=[1])


def test_all_nodata_scene_is_an_error_and_writes_nothing(tmp_path, make_geotiff, tiny_model):
    nd = make_geotiff("nd.tif", np.zeros((3, 96, 96), np.uint8), nodata=0)
    with pytest.raises(InputError, match="no valid pixels"):
        explain_scene(nd, tmp_path / "out", model=tiny_model)
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


@pytest.mark.parametrize("bad", ["missing.tif", "not_a_tif.tif", "folder.tif"])
def test_bad_inputs_are_one_line_errors(tmp_path, tiny_model, bad):
    p = tmp_path / bad
    if bad == "not_a_tif.tif":
        p.write_text("hello")
    elif bad == "folder.tif":
        p.mkdir()
    with pytest.raises(InputError) as exc:
        explain_scene(p, tmp_path / "out", model=tiny_model)
    assert "\n" not in str(exc.value)


def test_output_folder_that_cannot_be_written(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(64, 64))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="cannot create output folder"):
        explain_scene(scene, blocker / "out", model=tiny_model)


def test_bad_options(tiny_model):
    _, info = tiny_model
    with pytest.raises(SegxaiError, match="unknown method"):
        resolve_methods(["gradcam", "nope"])
    assert resolve_methods("gradcam,hirescam") == ["gradcam", "hirescam"]
    assert "layercam" in resolve_methods("all-gradient")
    assert info.resolve_class("Building") == (1, "building")
    assert info.resolve_class("0") == (0, "background")
    with pytest.raises(SegxaiError, match="not a class"):
        info.resolve_class("tree")
    with pytest.raises(SegxaiError, match="out of range"):
        info.resolve_class(5)


# ----------------------------------------------------------------------------- batches
def test_overwrite_refused_skip_existing_and_failures_continue(tmp_path, make_geotiff, tiny_model):
    a, _ = _scene(make_geotiff, "a.tif", size=(64, 64))
    b, _ = _scene(make_geotiff, "b.tif", size=(64, 64), seed=2)
    out = tmp_path / "out"
    run = explain_scenes([a, tmp_path / "missing.tif", b], out, model=tiny_model)
    assert [s.status for s in run.scenes] == ["done", "done", "failed"] or sorted(s.status for s in run.scenes) == ["done", "done", "failed"]
    assert not run.ok
    with pytest.raises(OutputError, match="exists"):
        explain_scene(a, out, model=tiny_model)
    mtime = (out / "a_saliency.tif").stat().st_mtime_ns
    run2 = explain_scenes([a, b], out, model=tiny_model, skip_existing=True)
    assert [s.status for s in run2.scenes] == ["skipped", "skipped"] and run2.ok
    assert (out / "a_saliency.tif").stat().st_mtime_ns == mtime
    # an incomplete scene (record missing) is redone under --skip-existing
    (out / "b_saliency.json").unlink()
    run3 = explain_scenes([a, b], out, model=tiny_model, skip_existing=True)
    assert [s.status for s in run3.scenes] == ["skipped", "done"]
    # other options than the complete outputs were made with: refuse rather than silently keep
    run4 = explain_scenes([a], out, model=tiny_model, skip_existing=True, methods=["hirescam"])
    assert run4.scenes[0].status == "failed" and "other options" in run4.scenes[0].error
    run5 = explain_scenes([a], out, model=tiny_model, overwrite=True, methods=["hirescam"])
    assert run5.ok
    with rasterio.open(out / "a_saliency.tif") as src:
        assert src.descriptions == ("hirescam",)
    csv_rows = (out / "segxai_scenes.csv").read_text().splitlines()
    assert len(csv_rows) == 3  # header + a + b, rebuilt from the records


def test_shards_split_inputs_deterministically(tmp_path, make_geotiff):
    files = [make_geotiff(f"s{i}.tif", np.zeros((1, 4, 4), np.uint8)) for i in range(5)]
    paths, failures = expand_paths([tmp_path])
    assert [p.name for p in paths] == [f"s{i}.tif" for i in range(5)] and not failures
    paths_glob, _ = expand_paths([str(tmp_path / "s*.tif"), files[0]])
    assert paths_glob == paths
    _, failures = expand_paths([str(tmp_path / "nomatch*.tif")])
    assert failures and "no files match" in failures[0][1]


def test_truncated_geotiff_fails_cleanly(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(256, 256))
    data = scene.read_bytes()
    broken = tmp_path / "broken.tif"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="broken.tif"):
        explain_scene(broken, tmp_path / "out", model=tiny_model)
    assert list((tmp_path / "out").iterdir()) == []  # temp files removed, nothing under final names


def test_band_index_out_of_range(tmp_path, make_geotiff, tiny_model):
    scene, _ = _scene(make_geotiff, size=(64, 64))
    with pytest.raises(InputError, match=r"bands 1,2,5"):
        explain_scene(scene, tmp_path / "out", model=tiny_model, bands=[1, 2, 5])

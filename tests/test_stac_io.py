"""STAC in and out: Items with per-band assets stacked into one scene (by asset keys or eo:bands
common names, coarser assets resampled to the finest grid), ItemCollections, items over HTTP; the
STAC Item and Catalog written for the outputs, validated for real with pystac (offline schemas);
exact band statistics in the COGs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil

from cloud_helpers import FAST, SIG, assert_same, assert_valid_outputs
from segxai_cli.explain import explain_scenes
from segxai_cli.raster.source import StacItemSource
from stac_validation import validate_file


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


S2 = {"B02": ("B02.tif", "blue", 1), "B03": ("B03.tif", "green", 1), "B04": ("B04.tif", "red", 1),
      "B8A": ("B8A.tif", "nir08", 2)}


def test_stac_item_with_per_band_assets_equals_the_stacked_geotiff(tmp_path, bands_folder, ckpt):
    item = write_item(bands_folder, S2)
    ref = explain_scenes([str(tmp_path / "stack.tif")], tmp_path / "ref", str(ckpt), **FAST)
    by_assets = explain_scenes([str(item)], tmp_path / "a", str(ckpt), assets="B04,B03,B02", **FAST)
    by_names = explain_scenes([str(item)], tmp_path / "b", str(ckpt), bands="red,green,blue", **FAST)
    assert ref.ok and by_assets.ok and by_names.ok, by_names.scenes[0].error
    assert_same(tmp_path / "ref", "stack", tmp_path / "a", "S2_item")
    assert_same(tmp_path / "ref", "stack", tmp_path / "b", "S2_item")
    out_item = json.loads((tmp_path / "a" / "S2_item.stac.json").read_text())
    assert out_item["properties"]["datetime"] == "2024-06-01T10:00:00Z"
    assert out_item["links"][0]["rel"] == "derived_from" and out_item["links"][0]["href"].endswith("S2_item.json")
    assert_valid_outputs(tmp_path / "a")


def test_stac_item_over_http_with_relative_asset_links(tmp_path, www, bands_folder, ckpt):
    for f in bands_folder.glob("B0*.tif"):
        (www.root / f.name).write_bytes(f.read_bytes())
    write_item(www.root, {k: S2[k] for k in ("B02", "B03", "B04")}, "remote_item")
    www.fail_once["/remote_item.json"] = 500  # the document itself is fetched with retries too
    run = explain_scenes([f"{www.url}/remote_item.json?{SIG}"], tmp_path / "out", str(ckpt),
                         bands="red,green,blue", **FAST)
    assert run.ok, run.scenes[0].error
    assert {"/B04.tif", "/B03.tif", "/B02.tif"} <= {r[1] for r in www.requests}  # resolved against the URL
    assert explain_scenes([str(tmp_path / "stack.tif")], tmp_path / "ref", str(ckpt), **FAST).ok
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


def test_stac_selection_errors_are_one_line(tmp_path, bands_folder, ckpt):
    item = write_item(bands_folder, S2)
    run = explain_scenes([str(item)], tmp_path / "o1", str(ckpt), **FAST)
    assert "4 raster assets (B02, B03, B04, B8A)" in run.scenes[0].error and "--assets" in run.scenes[0].error
    run = explain_scenes([str(item)], tmp_path / "o2", str(ckpt), assets="B04,B3,B02", **FAST)
    assert "no asset B3" in run.scenes[0].error
    run = explain_scenes([str(item)], tmp_path / "o3", str(ckpt), bands="red,green,violet", **FAST)
    assert "no band named 'violet'" in run.scenes[0].error


def test_item_collection_gives_one_scene_per_item(tmp_path, bands_folder, ckpt):
    import pystac

    items = [pystac.Item.from_file(str(write_item(bands_folder, S2, f"it{i}"))) for i in range(2)]
    for it in items:
        for a in it.assets.values():
            a.href = str(bands_folder / Path(a.href).name)
    coll = tmp_path / "coll.json"
    coll.write_text(json.dumps(pystac.ItemCollection(items).to_dict()))
    run = explain_scenes([str(coll)], tmp_path / "out", str(ckpt), assets="B04,B03,B02", **FAST)
    assert run.ok and sorted(s.input.stem for s in run.scenes) == ["it0", "it1"]
    cat = json.loads((tmp_path / "out" / "catalog.json").read_text())
    assert sorted(lk["href"] for lk in cat["links"] if lk["rel"] == "item") == ["./it0.stac.json", "./it1.stac.json"]
    assert_valid_outputs(tmp_path / "out")



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

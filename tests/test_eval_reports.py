"""The study's extra reports end to end: per object (--vector), per scene, paired tests, sanity files."""

from __future__ import annotations

import json
import math

import numpy as np
from conftest import ORIGIN
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.evaluation.report import read_csv

runner = CliRunner()
FAST = ["--curve-steps", "0", "--device", "cpu", "-q", "--chunk", "64", "--bootstrap", "200"]
PX = 0.3


def _box(col0, row0, col1, row1, **props):
    """A pixel box as a GeoJSON feature in the scenes' map coordinates."""
    x0, x1 = ORIGIN[0] + col0 * PX, ORIGIN[0] + col1 * PX
    y0, y1 = ORIGIN[1] - row1 * PX, ORIGIN[1] - row0 * PX
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def _scene(make_geotiff, name, seed=0, w=128, h=64):
    rng = np.random.default_rng(seed)
    return make_geotiff(name, rng.integers(0, 255, (3, h, w), dtype=np.uint8))


def test_per_object_rows(make_geotiff, tmp_path, tiny_checkpoint):
    _scene(make_geotiff, "s.tif")
    vec = tmp_path / "objects.geojson"
    feats = [_box(10, 10, 30, 40, name="hall"), _box(90, 20, 100, 30, name="shed"), _box(500, 500, 510, 510, name="far")]
    vec.write_text(json.dumps({"type": "FeatureCollection",
                               "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
                               "features": feats}))
    out = tmp_path / "o.csv"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "s.tif"), "-m", str(tiny_checkpoint), "--vector", str(vec),
                              "--feature-id", "name", "--method", "gradcam", "--budget", "10%", "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    rows = read_csv(out)
    assert sorted({r["object"] for r in rows}) == ["hall", "shed"]  # "far" lies outside the scene
    assert {r["target_source"] for r in rows} == {"object"}
    hall = [r for r in rows if r["object"] == "hall"]
    assert {r["n_target"] for r in hall} == {20 * 30} and len(hall) == 2 * 3  # t = 0.5 and 10 %, three modes
    # the object's tile is centred on it (inside the scene): 64 x 64 around the box centre (20, 25)
    assert {(r["row_off"], r["col_off"]) for r in hall} == {(0, 0)}
    shed = [r for r in rows if r["object"] == "shed"]
    assert {(r["row_off"], r["col_off"]) for r in shed} == {(0, 63)}
    meta = json.loads((tmp_path / "o.json").read_text())
    assert meta["scenes"][0]["objects"] == 2 and meta["scenes"][0]["clipped_objects"] == 0
    summ = read_csv(tmp_path / "o_summary.csv")
    assert {s["n_tiles"] for s in summ} == {2}  # each object is one unit


def test_many_scenes_paired_tests_and_sanity_files(make_geotiff, tmp_path, tiny_checkpoint):
    for i in range(2):
        _scene(make_geotiff, f"s{i}.tif", seed=i)
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "s0.tif"), str(tmp_path / "s1.tif"), "-m", str(tiny_checkpoint),
                              "--method", "gradcam,eigencam", "--budget", "0.1", "--sanity", "--sanity-threshold", "0.4",
                              "--max-tiles", "1", "--seed", "5", "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    scenes = read_csv(tmp_path / "r_scenes.csv")
    assert {s["n_scenes"] for s in scenes} == {2}
    assert {"confidence_scene_mean", "confidence_scene_std", "confidence_scene_ci_low"} <= set(scenes[0])
    paired = read_csv(tmp_path / "r_paired.csv")
    assert {(p["method_a"], p["method_b"]) for p in paired} == {("gradcam", "eigencam")}
    assert {p["metric"] for p in paired} == {"confidence", "entropy"}  # the curves are off (--curve-steps 0)
    assert all(p["n"] == 2 for p in paired)
    sanity = read_csv(tmp_path / "r_sanity.csv")
    steps = {(r["test"], r["step"], r["randomized"]) for r in sanity}
    assert ("cascade", 1, "segmentation_head") in steps and ("independent", 7, "encoder.1") in steps
    assert len(sanity) == 2 * 2 * 2 * 7  # scenes x methods x tests x groups
    verdicts = read_csv(tmp_path / "r_sanity_verdict.csv")
    assert {v["verdict"] for v in verdicts} <= {"pass", "fail", "inconclusive"} and {v["threshold"] for v in verdicts} == {0.4}
    # the tidy CSV's sanity_spearman is the cascade's last step (everything random)
    rows = read_csv(out)
    last = {(r["scene"], r["method"]): r["spearman"] for r in sanity if r["test"] == "cascade" and r["step"] == 7}
    for r in rows:
        v = last[(r["scene"], r["method"])]
        assert (math.isnan(v) and math.isnan(r["sanity_spearman"])) or abs(r["sanity_spearman"] - v) < 1e-5
    for f in ("r.png", "r_budget.png", "r_sanity.png"):
        assert (tmp_path / f).stat().st_size > 1000
    meta = json.loads((tmp_path / "r.json").read_text())
    assert [g["group"] for g in meta["sanity"]["groups"]][:2] == ["segmentation_head", "decoder.blocks.2"]
    assert meta["config"]["tie_rule"].startswith("random order")

"""`segxai evaluate` / `segxai threshold-sweep` end to end on tiny GeoTIFFs and a tiny model."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from rasterio.transform import from_origin
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.evaluation import evaluate_scenes
from segxai_cli.evaluation.report import read_csv

runner = CliRunner()
REQUIRED = ["scene", "tile", "method", "layer", "threshold", "mode", "confidence", "confidence_drop",
            "entropy", "entropy_increase", "iou", "iou_change"]
FAST = ["--method", "gradcam", "--curve-steps", "2", "--device", "cpu", "-q", "--chunk", "64"]
ONE = ["--max-tiles", "1"]


def _scene(make_geotiff, name, w=128, h=64, seed=0, **kw):
    rng = np.random.default_rng(seed)
    return make_geotiff(name, rng.integers(0, 255, (3, h, w), dtype=np.uint8), **kw)


def _mask(make_geotiff, name, w=128, h=64, **kw):
    m = np.zeros((h, w), np.uint8)
    m[10:40, 10:50] = 1  # buildings only in the left tile
    m[10:40, 80:100] = 1
    m[0:2] = 255  # ignored
    return make_geotiff(name, m, **kw)


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def scene(make_geotiff, tmp_path):
    _scene(make_geotiff, "s1.tif")
    _mask(make_geotiff, "s1_mask.tif")
    return tmp_path


def test_evaluate_with_masks_writes_tidy_csv_summary_plot_json(scene, tiny_checkpoint):
    out = scene / "rep.csv"
    res = runner.invoke(app, ["evaluate", str(scene / "s1.tif"), "--masks", str(scene), "-m", str(tiny_checkpoint),
                              "--layer", "decoder.last", "--layer", "decoder.-2", "--threshold", "0.3", "-o", str(out),
                              "--seed", "7", *FAST])
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert set(REQUIRED) <= set(rows[0])
    # 2 tiles (64 px grid over 128 x 64) x 1 method x 2 layers x (1 threshold + 3 default budgets) x 3 modes
    assert len([r for r in rows if r["threshold"] == "0.3" and r["budget"] == ""]) == 2 * 2 * 3
    assert sorted({r["budget"] for r in rows if r["threshold"] == ""}) == ["0.05", "0.1", "0.2"]
    assert len(rows) == 2 * 2 * 4 * 3
    assert {r["target_source"] for r in rows} == {"ground_truth"}
    assert {r["layer"] for r in rows} == {"decoder.last", "decoder.-2"}
    assert {r["mode"] for r in rows} == {"M1", "M2", "M3"}
    summ = _rows(scene / "rep_summary.csv")
    assert len(summ) == 2 * 4 * 3 and {"confidence_mean", "confidence_std", "iou_change_mean", "n_empty_target",
                                       "confidence_ci_low", "confidence_ci_high", "budget"} <= set(summ[0])
    assert (scene / "rep.png").stat().st_size > 1000
    meta = json.loads((scene / "rep.json").read_text())
    assert meta["config"]["seed"] == 7 and meta["target_source"] == ["ground_truth"]
    assert meta["model_sha256"] and meta["tiles"] == 2


def test_without_masks_prediction_is_target_and_note(scene, tiny_checkpoint):
    out = scene / "rep.csv"
    res = runner.invoke(app, ["evaluate", str(scene / "s1.tif"), "-m", str(tiny_checkpoint), "-o", str(out),
                              "--method", "gradcam", "--curve-steps", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "prediction stands in" in res.stderr
    rows = read_csv(out)
    assert {r["target_source"] for r in rows} == {"prediction"}
    # against the prediction, the full-input IoU is 1 wherever anything is predicted
    assert all(r["iou_full"] == 1.0 or r["empty_target"] for r in rows)


def test_same_inputs_same_csv_and_existing_outputs_refused(scene, tiny_checkpoint):
    args = ["evaluate", str(scene / "s1.tif"), "--masks", str(scene / "s1_mask.tif"), "-m", str(tiny_checkpoint),
            "--sanity", "--seed", "3", "-o", str(scene / "a.csv"), *FAST, *ONE]
    assert runner.invoke(app, args).exit_code == 0
    first = (scene / "a.csv").read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "already exists" in again.stderr and "--overwrite" in again.stderr
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert (scene / "a.csv").read_bytes() == first
    rows = read_csv(scene / "a.csv")
    assert all(-1.0 <= r["sanity_spearman"] <= 1.0 for r in rows if not math.isnan(r["sanity_spearman"]))
    assert any(not math.isnan(r["sanity_spearman"]) for r in rows)


def test_mask_grid_mismatch_fails_that_scene_only(make_geotiff, tmp_path, tiny_checkpoint):
    _scene(make_geotiff, "good.tif")
    _mask(make_geotiff, "good_mask.tif")
    _scene(make_geotiff, "bad.tif", seed=1)
    _mask(make_geotiff, "bad_mask.tif", transform=from_origin(0, 0, 1, 1))  # shifted grid
    _scene(make_geotiff, "small.tif", seed=2)
    _mask(make_geotiff, "small_mask.tif", w=96)  # wrong size
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "good.tif"), str(tmp_path / "bad.tif"), str(tmp_path / "small.tif"),
                              "--masks", str(tmp_path), "-m", str(tiny_checkpoint), "-o", str(out), *FAST])
    assert res.exit_code == 1
    errs = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errs) == 2
    assert any("bad_mask.tif" in e and "transform" in e for e in errs)
    assert any("small_mask.tif" in e and "96x64" in e for e in errs)
    assert {r["scene"] for r in _rows(out)} == {"good"}


def test_missing_mask_for_a_scene_is_an_error(scene, make_geotiff, tiny_checkpoint):
    _scene(make_geotiff, "other.tif", seed=5)
    res = runner.invoke(app, ["evaluate", str(scene / "s1.tif"), str(scene / "other.tif"), "--masks", str(scene),
                              "-m", str(tiny_checkpoint), "-o", str(scene / "r.csv"), *FAST, *ONE])
    assert res.exit_code == 1 and "other_mask.tif" in res.stderr


@pytest.mark.parametrize("t", ["1.5", "-0.2", "abc"])
def test_threshold_outside_unit_interval(scene, tiny_checkpoint, t):
    res = runner.invoke(app, ["evaluate", str(scene / "s1.tif"), "-m", str(tiny_checkpoint), "--threshold", t,
                              "-o", str(scene / "r.csv"), *FAST])
    assert res.exit_code == 2  # a usage error
    assert res.stderr.startswith("error: --threshold") and len(res.stderr.strip().splitlines()) == 1
    assert not (scene / "r.csv").exists()


def test_bad_class_and_method(scene, tiny_checkpoint):
    base = ["evaluate", str(scene / "s1.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "r.csv")]
    res = runner.invoke(app, [*base, "--class", "roads", *FAST])
    assert res.exit_code == 2 and "not a class of this model" in res.stderr and "building" in res.stderr
    res = runner.invoke(app, [*base, "--method", "nocam", "--device", "cpu"])
    assert res.exit_code == 2 and "nocam" in res.stderr
    res = runner.invoke(app, [*base, "--class", "building", *FAST])  # by name works
    assert res.exit_code == 0, res.output


def test_empty_target_tiles_marked_and_skipped_in_means(make_geotiff, tmp_path, tiny_checkpoint):
    _scene(make_geotiff, "e.tif")
    m = np.zeros((64, 128), np.uint8)
    m[10:40, 10:50] = 1  # right tile: no building at all
    make_geotiff("e_mask.tif", m)
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "e.tif"), "--masks", str(tmp_path), "-m", str(tiny_checkpoint),
                              "-o", str(out), "--method", "gradcam", "--curve-steps", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "no target-class pixels" in res.stderr
    rows = read_csv(out)
    empty = [r for r in rows if r["empty_target"]]
    assert {r["tile"] for r in empty} == {1}
    assert all(math.isnan(r["confidence"]) and math.isnan(r["entropy"]) for r in empty)
    summ = read_csv(tmp_path / "r_summary.csv")
    assert all(s["n_empty_target"] == 1 and s["n"] == 1 for s in summ)
    assert all(math.isfinite(s["confidence_mean"]) for s in summ)


def test_all_nodata_tiles_are_skipped(make_geotiff, tmp_path, tiny_checkpoint):
    arr = np.random.default_rng(0).integers(1, 255, (3, 64, 128), dtype=np.uint8)
    arr[:, :, 64:] = 0
    make_geotiff("n.tif", arr, nodata=0)
    out = tmp_path / "r.csv"
    res = runner.invoke(app, ["evaluate", str(tmp_path / "n.tif"), "-m", str(tiny_checkpoint), "-o", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert {r["tile"] for r in _rows(out)} == {"0"}
    assert json.loads((tmp_path / "r.json").read_text())["skipped_nodata_tiles"] == 1


def test_threshold_sweep_best_tables_and_plot(scene, tiny_checkpoint):
    out = scene / "sweep.csv"
    res = runner.invoke(app, ["threshold-sweep", str(scene), "--masks", str(scene), "-m", str(tiny_checkpoint),
                              "-o", str(out), "--method", "gradcam,eigencam", "--curve-steps", "0", "--device", "cpu", *ONE])
    assert res.exit_code == 0, res.output
    rows = read_csv(out)
    assert sorted({r["threshold"] for r in rows if math.isfinite(r["threshold"])}) == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert {r["scene"] for r in rows} == {"s1"}  # the folder's s1_mask.tif is not taken for a scene
    best = _rows(scene / "sweep_best.csv")
    # per mode: 5 thresholds, then the 3 default budgets
    assert [b["mode"] for b in best] == ["M1"] * 8 + ["M2"] * 8 + ["M3"] * 8
    assert [b["budget"] for b in best[:8]] == [""] * 5 + ["0.05", "0.1", "0.2"]
    assert "best method per threshold" in res.stdout and "best method per budget" in res.stdout
    assert all(b["runner_up"] and b["distinguishable"] in ("True", "False") for b in best)
    summ = read_csv(scene / "sweep_summary.csv")
    for b in best:  # M1: the method with the lowest mean confidence at that threshold / budget
        x = "threshold" if b["threshold"] else "budget"
        cands = [s for s in summ if s["mode"] == b["mode"] and s[x] == float(b[x])]
        key = {"M1": lambda s: s["confidence_mean"], "M2": lambda s: -s["confidence_mean"],
               "M3": lambda s: s["entropy_mean"]}[b["mode"]]
        assert b["method"] == min(cands, key=key)["method"]
    assert (scene / "sweep.png").stat().st_size > 1000


def test_json_output(scene, tiny_checkpoint):
    res = runner.invoke(app, ["evaluate", str(scene / "s1.tif"), "-m", str(tiny_checkpoint), "-o", str(scene / "r.csv"),
                              "--json", "--method", "gradcam", "--curve-steps", "0", "--device", "cpu", "--budget", "none", *ONE])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["meta"]["rows"] == 3 and doc["summary"][0]["method"] == "gradcam"


def test_library_api(scene, tiny_model):
    rows = evaluate_scenes([scene / "s1.tif"], masks=scene, model=tiny_model, methods=["gradcam", "xgradcam"],
                           layers=["decoder.last"], thresholds=[0.2, 0.4], curve_steps=0, device="cpu", max_tiles=1,
                           budgets=[])
    assert len(rows) == 1 * 2 * 2 * 3
    assert rows[0]["scene"] == "s1" and rows[0]["target_source"] == "ground_truth"


def test_binary_sigmoid_model(scene):
    import torch

    from conftest import tiny_model_info
    from segxai_cli.model.families import build_model

    torch.manual_seed(1)
    info = tiny_model_info(classes=1)
    model = build_model(info).eval()
    rows = evaluate_scenes([scene / "s1.tif"], masks=scene, model=(model, info), methods=["gradcam"],
                           thresholds=[0.3], curve_steps=2, device="cpu", max_tiles=1, budgets=[])
    assert len(rows) == 3 and rows[0]["target_class"] == 1
    r = rows[0]
    assert 0.0 <= r["entropy_full"] <= 1.0 and 0.0 <= r["confidence_full"] <= 1.0

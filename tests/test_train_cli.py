"""`segxai train` end to end: a tiny run that writes a loadable checkpoint and a CSV log, and every
kind of bad input failing with one `error:` line, a non-zero exit and no file left behind."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
import torch
from rasterio.transform import from_origin
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.model.checkpoint import load_checkpoint
from tests.test_train import make_pair, scene_arrays

runner = CliRunner()
TINY = ["--encoder", "resnet18", "--encoder-depth", "3", "--decoder-channels", "16,8,8", "--tile-size", "32",
        "--batch-size", "4", "--samples-per-epoch", "8", "--epochs", "1", "--val-fraction", "0.25", "--device", "cpu"]


@pytest.fixture
def data(make_geotiff, tmp_path):
    """Two scene/mask pairs in data/, an empty out/ folder."""
    (tmp_path / "data").mkdir()
    (tmp_path / "out").mkdir()
    make_pair(make_geotiff, "data/a", seed=0)
    make_pair(make_geotiff, "data/b", seed=1)
    return tmp_path


def train(*args: str):
    return runner.invoke(app, ["train", *TINY, *map(str, args)])  # later options win over TINY


def assert_one_line_error(res, out_dir: Path, match: str) -> None:
    assert res.exit_code != 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    lines = [ln for ln in (res.stderr or res.output).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert match in lines[0], lines[0]
    assert "Traceback" not in res.output
    left = sorted(p.name for p in out_dir.iterdir())
    assert left == [], f"files left behind: {left}"


def test_train_one_epoch_writes_loadable_checkpoint_and_log(data):
    out = data / "out" / "model.pt"
    res = train(data / "data", data / "data", "-o", out, "--seed", "1", "-q")
    assert res.exit_code == 0, res.output
    assert f"{out}: best epoch 1/1" in res.stdout
    model, info = load_checkpoint(out)  # torch.load(weights_only=True) inside
    assert info.encoder == "resnet18" and info.tile_size == 32 and info.bands == [1, 2, 3]
    assert info.class_names == ["background", "building"] and info.band_stats is not None
    assert [d["scene"] for d in info.provenance["data"]] == ["a.tif", "b.tif"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    with open(data / "out" / "model_log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1 and set(rows[0]) == {"epoch", "loss", "train_iou", "val_iou", "lr", "seconds"}
    assert 0 <= float(rows[0]["val_iou"]) <= 1
    assert sorted(p.name for p in (data / "out").iterdir()) == ["model.pt", "model_log.csv"]

    # existing model: refused without --overwrite, file untouched; replaced with it
    before = out.read_bytes()
    res = train(data / "data", data / "data", "-o", out)
    assert res.exit_code == 1 and res.stderr.strip().startswith("error: ") and "--overwrite" in res.stderr
    assert out.read_bytes() == before
    res = train(data / "data", data / "data", "-o", out, "--overwrite", "-q", "-b", "3,2,1", "--log", data / "out" / "l.csv")
    assert res.exit_code == 0, res.output
    assert load_checkpoint(out)[1].bands == [3, 2, 1]
    assert (data / "out" / "l.csv").is_file()


def test_help_documents_the_pairing_rule():
    res = runner.invoke(app, ["train", "--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    assert "_mask.tif" in text and "same name" in text


# ---- bad input: one line, non-zero exit, no checkpoint nor temp file -----------------------------------


def test_error_mask_size_mismatch(make_geotiff, data):
    _, mask = scene_arrays()
    make_geotiff("data/b_mask.tif", mask[:, :64])
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "does not match scene")


def test_error_mask_grid_mismatch(make_geotiff, data):
    _, mask = scene_arrays()
    make_geotiff("data/b_mask.tif", mask, transform=from_origin(500003.0, 5000000.0, 0.3, 0.3))
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "transform")
    make_geotiff("data/b_mask.tif", mask, crs="EPSG:4326")
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "CRS")


def test_error_missing_masks_lists_scenes(make_geotiff, data):
    img, _ = scene_arrays()
    make_geotiff("data/c.tif", img)
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "no mask for 1 scene(s)")
    assert "c.tif" in res.stderr and "a.tif" not in res.stderr


def test_error_band_count(make_geotiff, data):
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt", "-b", "1,4")
    assert_one_line_error(res, data / "out", "band index(es) [4] out of range")
    make_pair(make_geotiff, "data/c", bands=4)
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "different band counts")


def test_error_not_a_geotiff(data):
    (data / "data" / "b.tif").write_text("this is not a raster")
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "b.tif")
    (data / "data" / "junk.tif").write_bytes(os.urandom(64))
    (data / "data" / "junk_mask.tif").write_bytes(os.urandom(64))
    res = train(data / "data" / "junk.tif", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "junk")


def test_error_mask_values_out_of_range(make_geotiff, data):
    _, mask = scene_arrays()
    mask[5, 5] = 7
    mask[6, 6] = 255  # ignore: fine
    make_geotiff("data/a_mask.tif", mask)
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "value(s) 7 but --classes 2 allows 0..1")


def test_error_unwritable_output(data):
    res = train(data / "data", data / "data", "-o", data / "nowhere" / "m.pt")
    assert_one_line_error(res, data / "out", "does not exist")
    assert not (data / "nowhere").exists()
    res = train(data / "data", data / "data", "-o", data / "out")
    assert_one_line_error(res, data / "out", "is a directory")
    if os.geteuid() != 0:  # root can write anywhere
        ro = data / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            res = train(data / "data", data / "data", "-o", ro / "m.pt")
            assert_one_line_error(res, ro, "not writable")
        finally:
            ro.chmod(0o755)


def test_error_bad_options(data):
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt", "--classes", "2", "--class-names", "a,b,c")
    assert_one_line_error(res, data / "out", "--class-names")
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt", "--encoder", "nonexistent_encoder")
    assert_one_line_error(res, data / "out", "cannot build model")
    res = train(data / "data", data / "data", "-o", data / "out" / "m.pt", "--device", "cuda:7")
    if not torch.cuda.is_available():
        assert_one_line_error(res, data / "out", "CUDA is not available")
    res = train(data / "nothing*.tif", data / "data", "-o", data / "out" / "m.pt")
    assert_one_line_error(res, data / "out", "no files match")

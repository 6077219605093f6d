"""Training library: pairing scenes with masks, validation, the window sampler, the loop, the checkpoint."""

from __future__ import annotations

import csv
import os
import math

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from segxai_cli.errors import InputError, OutputError, SegxaiError
from segxai_cli.model.checkpoint import load_checkpoint
from segxai_cli.raster.stats import BandStats
from segxai_cli.files import check_output_file as check_output
from segxai_cli.training.loop import IoUMeter, SegLoss, resolve_class_names, train_model
from segxai_cli.training.sampler import (
    IGNORE_INDEX,
    WindowSampler,
    augment_pair,
    cell_grid,
    match_pairs,
    validate_pairs,
)

TINY = dict(
    encoder="resnet18",
    model_kwargs={"encoder_depth": 3, "decoder_channels": [16, 8, 8]},
    tile_size=32,
    batch_size=4,
    samples_per_epoch=8,
    epochs=1,
    val_fraction=0.25,
    device="cpu",
)


def scene_arrays(w=96, h=96, seed=0, bands=3, dtype=np.uint8):
    """Dark noisy ground with bright rectangular 'buildings'; mask 1 on the buildings."""
    rng = np.random.default_rng(seed)
    img = rng.normal(60, 10, (bands, h, w))
    mask = np.zeros((h, w), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h - 12), rng.integers(0, w - 12)
        hh, ww = rng.integers(6, 16, 2)
        mask[y : y + hh, x : x + ww] = 1
    img[:, mask == 1] += 120
    return np.clip(img, 1, 250).astype(dtype), mask


def make_pair(make_geotiff, stem="s1", seed=0, w=96, h=96, bands=3, mask_name=None, **kw):
    img, mask = scene_arrays(w, h, seed, bands)
    scene = make_geotiff(f"{stem}.tif", img, **kw)
    m = make_geotiff(mask_name or f"{stem}_mask.tif", mask, **{k: v for k, v in kw.items() if k != "nodata"})
    return scene, m


# ---- pairing ----------------------------------------------------------------------------------------


def test_match_by_mask_suffix_in_same_folder_and_glob(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a")
    make_pair(make_geotiff, "b", seed=1)
    pairs = match_pairs(str(tmp_path), str(tmp_path))
    assert [(s.name, m.name) for s, m in pairs] == [("a.tif", "a_mask.tif"), ("b.tif", "b_mask.tif")]
    # a glob that also matches the masks takes only the scenes
    pairs = match_pairs(str(tmp_path / "*.tif"), str(tmp_path / "*_mask.tif"))
    assert [s.name for s, _ in pairs] == ["a.tif", "b.tif"]


def test_match_same_name_in_masks_folder(make_geotiff, tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "lbl").mkdir()
    img, mask = scene_arrays()
    make_geotiff("img/x.tif", img)
    make_geotiff("lbl/x.tif", mask)
    pairs = match_pairs(tmp_path / "img", tmp_path / "lbl")
    assert [(str(s.path.relative_to(tmp_path)), str(m.path.relative_to(tmp_path))) for s, m in pairs] == [("img/x.tif", "lbl/x.tif")]


def test_missing_masks_are_listed(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a")
    img, _ = scene_arrays()
    make_geotiff("lonely.tif", img)
    make_geotiff("other.tif", img)
    with pytest.raises(InputError, match=r"no mask for 2 scene\(s\): .*lonely\.tif, .*other\.tif"):
        match_pairs(tmp_path, tmp_path)


def test_nothing_matches(tmp_path):
    with pytest.raises(InputError, match="no files match"):
        match_pairs(str(tmp_path / "*.tif"), str(tmp_path))
    with pytest.raises(InputError, match="no such file"):
        match_pairs(tmp_path / "nope.tif", tmp_path)


# ---- validation ---------------------------------------------------------------------------------------


def test_validate_mask_values_and_ignore(make_geotiff, tmp_path):
    scene, _ = make_pair(make_geotiff, "a")
    img, mask = scene_arrays()
    mask[0:4] = 255  # ignore is fine
    make_geotiff("a_mask.tif", mask)
    pairs, bands = validate_pairs(match_pairs(scene, tmp_path), bidx=None, classes=2)
    assert bands == [1, 2, 3]
    assert pairs[0].class_counts[1] == int((mask == 1).sum())
    mask[10, 10] = 2
    make_geotiff("a_mask.tif", mask)
    with pytest.raises(InputError, match=r"value\(s\) 2 but --classes 2 allows 0..1"):
        validate_pairs(match_pairs(scene, tmp_path), bidx=None, classes=2)
    validate_pairs(match_pairs(scene, tmp_path), bidx=None, classes=3)  # fine with 3 classes


def test_validate_grid_mismatches(make_geotiff, tmp_path):
    from rasterio.transform import from_origin

    img, mask = scene_arrays(96, 96)
    make_geotiff("a.tif", img)
    make_geotiff("a_mask.tif", mask[:80])
    with pytest.raises(InputError, match=r"size 96x80 does not match"):
        validate_pairs(match_pairs(tmp_path / "a.tif", tmp_path), bidx=None, classes=2)
    make_geotiff("a_mask.tif", mask, transform=from_origin(500030.0, 5000000.0, 0.3, 0.3))
    with pytest.raises(InputError, match=r"transform\) differs"):
        validate_pairs(match_pairs(tmp_path / "a.tif", tmp_path), bidx=None, classes=2)
    make_geotiff("a_mask.tif", mask, crs="EPSG:32634")
    with pytest.raises(InputError, match="CRS .* differs"):
        validate_pairs(match_pairs(tmp_path / "a.tif", tmp_path), bidx=None, classes=2)


def test_validate_bands(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a", bands=3)
    make_pair(make_geotiff, "b", bands=4)
    pairs = match_pairs(tmp_path, tmp_path)
    with pytest.raises(InputError, match="different band counts"):
        validate_pairs(pairs, bidx=None, classes=2)
    _, bands = validate_pairs(pairs, bidx=[3, 1], classes=2)
    assert bands == [3, 1]
    with pytest.raises(InputError, match=r"has 3 band\(s\); band index\(es\) \[4\]"):
        validate_pairs(pairs, bidx=[4], classes=2)


# ---- windows and sampler -----------------------------------------------------------------------------


def test_cell_grid_covers_edges_and_small_scenes():
    cells = cell_grid(100, 70, 32)
    cover = np.zeros((70, 100), bool)
    for w in cells:
        assert (w.width, w.height) == (32, 32)
        cover[w.row_off : w.row_off + 32, w.col_off : w.col_off + 32] = True
    assert cover.all()
    assert cell_grid(20, 10, 32) == [Window(0, 0, 20, 10)]


def _sampler(make_geotiff, tmp_path, *, nodata=None, val_fraction=0.25, tile=32, w=96, h=96):
    img, mask = scene_arrays(w, h)
    if nodata is not None:
        img[:, :, : w // 2] = nodata
    make_geotiff("a.tif", img, nodata=nodata)
    make_geotiff("a_mask.tif", mask)
    pairs, bands = validate_pairs(match_pairs(tmp_path / "a.tif", tmp_path), bidx=None, classes=2)
    stats = BandStats((100.0,) * 3, (50.0,) * 3)
    return WindowSampler(pairs, bands, stats, tile_size=tile, val_fraction=val_fraction, seed=0), mask


def test_validation_labels_never_reach_training(make_geotiff, tmp_path):
    sampler, _ = _sampler(make_geotiff, tmp_path)
    with sampler:
        assert len(sampler.val_cells) == 2  # 25 % of 9 cells
        val = np.zeros((96, 96), bool)
        for ref in sampler.val_cells:
            w = ref.window
            val[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] = True
        rng = np.random.default_rng(0)
        for _ in range(30):
            ref = sampler.random_window(rng)
            _, tgt = sampler.read(ref.scene, ref.window)
            sampler._hide_val(ref, tgt)
            w = ref.window
            sub = val[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width]
            assert (tgt[: w.height, : w.width][sub] == IGNORE_INDEX).all()
        # the split is fixed by the seed
        again = WindowSampler(sampler.pairs, sampler.bidx, sampler.stats, tile_size=32, val_fraction=0.25, seed=0)
        assert again.val_cells == sampler.val_cells
        again.close()


def test_nodata_is_ignored_and_mostly_nodata_windows_are_redrawn(make_geotiff, tmp_path):
    sampler, mask = _sampler(make_geotiff, tmp_path, nodata=0, val_fraction=0)
    with sampler:
        img, tgt = sampler.read(0, Window(0, 0, 32, 32))  # entirely nodata
        assert (tgt == IGNORE_INDEX).all() and (img == 0).all()
        rng = np.random.default_rng(1)
        for _ in range(20):
            _, tgt = sampler.train_sample(rng, augment=False)
            assert (tgt != IGNORE_INDEX).mean() >= 0.5


def test_small_scene_is_padded_with_ignore(make_geotiff, tmp_path):
    sampler, mask = _sampler(make_geotiff, tmp_path, w=20, h=24, val_fraction=0)
    with sampler:
        img, tgt = sampler.train_sample(np.random.default_rng(0), augment=False)
        assert img.shape == (3, 32, 32) and tgt.shape == (32, 32)
        assert (tgt[24:] == IGNORE_INDEX).all() and (tgt[:, 20:] == IGNORE_INDEX).all()
        assert (tgt[:24, :20] == mask).all()


def test_augment_moves_labels_with_pixels():
    rng = np.random.default_rng(3)
    img = rng.normal(size=(2, 8, 8)).astype(np.float32)
    tgt = (img[0] > 0).astype(np.int64)
    for _ in range(10):
        a, t = augment_pair(img, tgt, rng)
        assert ((a[0] > 0).astype(np.int64) == t).all()
    # colour jitter: per-band affine change, labels untouched, geometry still consistent
    a, t = augment_pair(img, tgt, np.random.default_rng(4), jitter=0.2)
    b, u = augment_pair(img, tgt, np.random.default_rng(4))
    assert (t == u).all() and not np.allclose(a, b)
    for band in range(2):
        gain = np.polyfit(b[band].ravel(), a[band].ravel(), 1)[0]
        assert 0.8 <= gain <= 1.2


# ---- loss, metric, options ---------------------------------------------------------------------------------


def test_iou_meter_and_loss_ignore():
    logits = torch.zeros(1, 2, 2, 2)
    logits[0, 1, 0, :] = 5  # predict building on the top row
    target = torch.tensor([[[1, 0], [1, IGNORE_INDEX]]])
    m = IoUMeter(2)
    m.update(logits, target)
    assert m.value() == pytest.approx(1 / 3)  # inter 1, union {(0,0),(0,1),(1,0)}
    # binary (sigmoid) model
    mb = IoUMeter(1)
    mb.update(logits[:, 1:] - 2.5, target)
    assert mb.value() == pytest.approx(1 / 3)
    # ignored pixels do not change the loss
    loss = SegLoss(2, "ce+dice")
    t2 = target.clone()
    t2[0, 1, 1] = 0
    l1 = loss(logits, target)
    logits2 = logits.clone()
    logits2[0, :, 1, 1] = torch.tensor([-50.0, 50.0])
    assert float(loss(logits2, target)) == pytest.approx(float(l1))
    assert math.isfinite(float(SegLoss(1)(logits[:, :1], target)))


def test_class_names_and_output_checks(tmp_path):
    assert resolve_class_names(2, None) == ["background", "building"]
    assert resolve_class_names(1, ["roof"]) == ["background", "roof"]
    assert resolve_class_names(3, None) == ["class_0", "class_1", "class_2"]
    with pytest.raises(SegxaiError, match="2 name"):
        resolve_class_names(3, ["a", "b"])
    (tmp_path / "m.pt").write_bytes(b"x")
    with pytest.raises(OutputError, match="already exists"):
        check_output(tmp_path / "m.pt", overwrite=False)
    check_output(tmp_path / "m.pt", overwrite=True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output(tmp_path / "nope" / "m.pt", overwrite=False)
    with pytest.raises(OutputError, match="is a directory"):
        check_output(tmp_path, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no probe file left


# ---- the loop ------------------------------------------------------------------------------------------


def test_train_checkpoint_roundtrip_history_and_provenance(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a", seed=0)
    make_pair(make_geotiff, "b", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    res = train_model(tmp_path, tmp_path, out / "m.pt", seed=3, **TINY)
    assert res.path == out / "m.pt" and res.log_path == out / "m_log.csv"
    assert len(res.history) == 1 and res.best_epoch == 1
    model, info = load_checkpoint(res.path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))
    assert info.arch == "Unet" and info.encoder == "resnet18" and info.tile_size == 32
    assert info.bands == [1, 2, 3] and info.classes == 2 and info.class_names == ["background", "building"]
    assert info.source_dtype == "uint8" and info.model_kwargs == TINY["model_kwargs"]
    assert len(info.band_stats.mean) == 3 and 60 < info.band_stats.mean[0] < 100
    prov = info.provenance
    assert [d["scene"] for d in prov["data"]] == ["a.tif", "b.tif"]
    assert all(len(d["scene_sha256"]) == 12 and d["mask"].endswith("_mask.tif") for d in prov["data"])
    assert prov["epochs"] == 1 and prov["best_epoch"] == 1 and prov["seed"] == 3
    assert prov["segxai_version"] and prov["date"] and prov["val_iou"] == pytest.approx(res.history[0]["val_iou"], abs=1e-6)
    with open(res.log_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "loss", "train_iou", "val_iou", "lr", "seconds"]
    assert rows[0]["epoch"] == "1" and float(rows[0]["loss"]) > 0
    assert sorted(p.name for p in out.iterdir()) == ["m.pt", "m_log.csv"]


def test_training_is_deterministic_for_a_seed(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a")
    (tmp_path / "o").mkdir()
    r1 = train_model(tmp_path / "a.tif", tmp_path, tmp_path / "o" / "m1.pt", seed=5, **TINY)
    r2 = train_model(tmp_path / "a.tif", tmp_path, tmp_path / "o" / "m2.pt", seed=5, **TINY)
    s1, s2 = r1.model.state_dict(), r2.model.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1.history[0]["loss"] == r2.history[0]["loss"]


def test_binary_model_and_nodata_scene(make_geotiff, tmp_path):
    img, mask = scene_arrays(96, 96, seed=2)
    img[:, :20, :] = 0
    make_geotiff("n.tif", img, nodata=0)
    make_geotiff("n_mask.tif", mask)
    (tmp_path / "o").mkdir()
    res = train_model(tmp_path / "n.tif", tmp_path, tmp_path / "o" / "bin.pt", classes=1, loss="ce", **TINY)
    model, info = load_checkpoint(res.path)
    assert info.classes == 1 and info.class_names == ["background", "building"]
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 32, 32)
    # statistics ignore the nodata rows (all zeros there)
    valid = img[0][20:].astype(np.float64)
    assert info.band_stats.mean[0] == pytest.approx(valid.mean(), rel=1e-6)


def test_bad_options_fail_before_any_file(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a")
    out = tmp_path / "o"
    out.mkdir()
    for kw, msg in [
        (dict(tile_size=36), "multiple of 8"),
        (dict(epochs=0), "--epochs"),
        (dict(val_fraction=1.0), "--val-fraction"),
        (dict(encoder="no-such-encoder"), "cannot build model"),
        (dict(loss="focal"), "--loss"),
    ]:
        with pytest.raises(SegxaiError, match=msg):
            train_model(tmp_path / "a.tif", tmp_path, out / "m.pt", **{**TINY, **kw})
        assert list(out.iterdir()) == []


def test_fine_tune_from_init_checkpoint(make_geotiff, tmp_path):
    make_pair(make_geotiff, "a")
    (tmp_path / "o").mkdir()
    first = train_model(tmp_path / "a.tif", tmp_path, tmp_path / "o" / "m1.pt", seed=1, **TINY)
    # architecture, bands and statistics come from the init checkpoint (the encoder argument is ignored)
    second = train_model(tmp_path / "a.tif", tmp_path, tmp_path / "o" / "m2.pt", seed=1, init=first.path,
                         **{**TINY, "encoder": "resnet34", "lr": 1e-4})
    info = load_checkpoint(second.path)[1]
    assert info.encoder == "resnet18" and info.band_stats == first.info.band_stats
    assert info.provenance["init"]["file"] == "m1.pt"
    assert info.provenance["init"]["provenance"]["seed"] == 1
    # the weights started from the first model: they moved only a little
    w1 = first.model.state_dict()["segmentation_head.0.weight"]
    w2 = second.model.state_dict()["segmentation_head.0.weight"]
    assert not torch.equal(w1, w2) and (w1 - w2).abs().max() < 0.1 * w1.abs().max()
    # checkpoints get ordinary permissions (not mkstemp's 0600)
    umask = os.umask(0)
    os.umask(umask)
    assert (second.path.stat().st_mode & 0o777) == (0o666 & ~umask)

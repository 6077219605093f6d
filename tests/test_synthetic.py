"""Synthetic scene generator: determinism, seamless windows, georeferencing, masks, CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.errors import OutputError
from segxai_cli.synth import DEFAULT_ORIGIN, UINT16_SCALE, generate_scene, render_window, write_scene

W, H = 420, 300


def test_deterministic_and_seed_dependent():
    a_img, a_mask, _ = generate_scene(W, H, 5)
    b_img, b_mask, _ = generate_scene(W, H, 5)
    c_img, c_mask, _ = generate_scene(W, H, 6)
    assert a_img.dtype == np.uint8 and a_img.shape == (3, H, W)
    assert a_mask.dtype == np.uint8 and a_mask.shape == (H, W)
    assert np.array_equal(a_img, b_img) and np.array_equal(a_mask, b_mask)
    assert not np.array_equal(a_img, c_img)
    assert not np.array_equal(a_mask, c_mask)


def test_windows_join_seamlessly():
    img, mask, _ = generate_scene(W, H, 11)
    out = np.zeros_like(img)
    out_mask = np.zeros_like(mask)
    for r in range(0, H, 97):
        for c in range(0, W, 130):
            w, h = min(130, W - c), min(97, H - r)
            i, m = render_window(11, c, r, w, h, scene_width=W, scene_height=H)
            out[:, r : r + h, c : c + w] = i
            out_mask[r : r + h, c : c + w] = m
    assert np.array_equal(out, img) and np.array_equal(out_mask, mask)


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.profile, ds


def test_block_size_does_not_change_output(tmp_path):
    w, h = 600, 530
    write_scene(tmp_path / "a.tif", tmp_path / "a_mask.tif", w, h, 3, block=256)
    write_scene(tmp_path / "b.tif", tmp_path / "b_mask.tif", w, h, 3, block=1024)
    with rasterio.open(tmp_path / "a.tif") as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(), b.read())
    with rasterio.open(tmp_path / "a_mask.tif") as a, rasterio.open(tmp_path / "b_mask.tif") as b:
        assert np.array_equal(a.read(), b.read())
    img, mask, _ = generate_scene(w, h, 3)
    with rasterio.open(tmp_path / "a.tif") as a:
        assert np.array_equal(a.read(), img)


def test_written_files_georeferenced_and_aligned(tmp_path):
    info = write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 512, 512, 2)
    assert list(tmp_path.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == ["s.tif", "s_mask.tif"]
    with rasterio.open(tmp_path / "s.tif") as ds, rasterio.open(tmp_path / "s_mask.tif") as dm:
        assert ds.crs.to_epsg() == 32633 and dm.crs.to_epsg() == 32633
        assert ds.res == (0.3, 0.3)
        assert ds.transform == dm.transform
        assert (ds.transform.c, ds.transform.f) == DEFAULT_ORIGIN
        assert ds.transform.b == 0 and ds.transform.d == 0 and ds.transform.e < 0
        assert ds.count == 3 and ds.dtypes == ("uint8",) * 3
        assert ds.descriptions == ("red", "green", "blue")
        assert ds.nodata is None
        assert ds.block_shapes[0] == (256, 256) and dm.block_shapes[0] == (256, 256)
        assert ds.compression.name.lower() == "deflate"
        assert ds.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "2"
        assert dm.count == 1 and dm.dtypes == ("uint8",)
        assert dm.colormap(1)[1] == (255, 0, 0, 255)
        mask = dm.read(1)
        img = ds.read(window=Window(0, 0, 512, 512))
    assert set(np.unique(mask)) <= {0, 1}
    cover = mask.mean()
    assert 0.05 <= cover <= 0.4
    assert info["building_fraction"] == pytest.approx(cover)
    # the mask is aligned with the rendering and buildings differ from their surroundings
    ref_img, ref_mask, _ = generate_scene(512, 512, 2)
    assert np.array_equal(mask, ref_mask) and np.array_equal(img, ref_img)


def test_building_coverage_over_seeds():
    covers = [generate_scene(512, 512, s)[1].mean() for s in (1, 2, 3, 4)]
    assert all(0.03 <= c <= 0.4 for c in covers)
    assert 0.06 <= float(np.mean(covers)) <= 0.3


def test_uint16_is_scaled_8bit():
    img8, mask8, _ = generate_scene(200, 160, 9)
    img16, mask16, prof = generate_scene(200, 160, 9, dtype="uint16")
    assert img16.dtype == np.uint16 and prof["dtype"] == "uint16"
    assert np.array_equal(mask8, mask16)
    assert img16.max() > 255 and img16.max() <= 4095
    diff = np.abs(img16.astype(np.float64) / UINT16_SCALE - img8)
    assert diff.max() <= 0.51


def test_uint16_written(tmp_path):
    write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 300, 200, 4, dtype="uint16", block=128)
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert ds.dtypes == ("uint16",) * 3
        assert np.array_equal(ds.read(), generate_scene(300, 200, 4, dtype="uint16")[0])


def test_nodata_border(tmp_path):
    img, mask, prof = generate_scene(400, 300, 8, nodata_border=True)
    nd = (img == 0).all(axis=0)
    assert prof["nodata"] == 0
    assert 0.02 < nd.mean() < 0.2
    assert ((img == 0).any(axis=0) == nd).all()  # valid pixels are never 0
    assert mask[nd].sum() == 0
    clean, clean_mask, _ = generate_scene(400, 300, 8)
    assert np.array_equal(img[:, ~nd], clean[:, ~nd])
    write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 400, 300, 8, nodata_border=True, block=256)
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert ds.nodata == 0
        assert np.array_equal(ds.read(), img)
        assert np.array_equal(ds.read_masks(1) == 0, nd)


def test_refuses_to_overwrite(tmp_path):
    write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 64, 64, 1)
    with pytest.raises(OutputError):
        write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 64, 64, 2)
    with pytest.raises(OutputError):
        write_scene(tmp_path / "missing" / "s.tif", tmp_path / "s_mask.tif", 64, 64, 2)
    write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 64, 64, 2, overwrite=True)
    with rasterio.open(tmp_path / "s.tif") as ds:
        assert np.array_equal(ds.read(), generate_scene(64, 64, 2)[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif", "s_mask.tif"]  # no temp files left


def test_failure_leaves_no_final_or_temp_files(tmp_path, monkeypatch):
    from segxai_cli.synth import geotiff

    calls = []

    def failing_window(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return render_window(*args, **kwargs)

    monkeypatch.setattr(geotiff, "render_window", failing_window)
    with pytest.raises(KeyboardInterrupt):
        write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 96, 64, 1, block=32)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    # an existing pair stays as it was when its replacement fails
    write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 96, 64, 1)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    calls.clear()
    monkeypatch.setattr(geotiff, "render_window", failing_window)
    with pytest.raises(KeyboardInterrupt):
        write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 96, 64, 2, block=32, overwrite=True)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_failed_rename_of_mask_publishes_neither(tmp_path, monkeypatch):
    from segxai_cli import files

    real_publish = files.publish

    def publish(tmp, final, **kwargs):
        if str(final).endswith("_mask.tif"):  # like publish: the temp file goes, one OutputError
            Path(tmp).unlink()
            raise files.write_error(final, OSError(28, "No space left on device"))
        return real_publish(tmp, final, **kwargs)

    monkeypatch.setattr(files, "publish", publish)
    with pytest.raises(OutputError, match="no space left"):
        write_scene(tmp_path / "s.tif", tmp_path / "s_mask.tif", 64, 64, 1)
    assert list(tmp_path.iterdir()) == []  # the image is not published either, its temp file is gone


def test_cli_writes_pairs_and_refuses_overwrite(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["synth", "-o", str(out), "--count", "2", "--size", "96x64", "--seed", "4"])
    assert res.exit_code == 0, res.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["scene_04.tif", "scene_04_mask.tif", "scene_05.tif", "scene_05_mask.tif"]
    with rasterio.open(out / "scene_04.tif") as a, rasterio.open(out / "scene_05.tif") as b:
        assert (a.width, a.height) == (96, 64)
        assert np.array_equal(a.read(), generate_scene(96, 64, 4)[0])
        assert b.bounds.left >= a.bounds.right  # side by side, no overlap
    res = runner.invoke(app, ["synth", "-o", str(out), "--count", "1", "--size", "96x64", "--seed", "4"])
    assert res.exit_code == 1
    assert "error:" in res.output and "already exists" in res.output
    res = runner.invoke(
        app, ["synth", "-o", str(out), "--size", "80", "--seed", "4", "--overwrite", "--dtype", "uint16", "--nodata-border"]
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(out / "scene_04.tif") as a:
        assert (a.width, a.height, a.dtypes[0], a.nodata) == (80, 80, "uint16", 0)
    res = runner.invoke(app, ["synth", "-o", str(out), "--size", "80x", "--overwrite"])
    assert res.exit_code == 2

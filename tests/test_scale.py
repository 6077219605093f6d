"""Scaling out without Ray: job-array shards, worker options, scenes split into row blocks, worker processes.

The split-scene runs use the in-process pool (the same tasks the Ray and process workers run) and
are compared with an ordinary run; one test runs real worker processes with one of them killed.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from segxai_cli.errors import UsageError
from segxai_cli.explain.executors import choose_executor
from segxai_cli.explain.executors.pool import PoolExecutor
from segxai_cli.explain.run import explain_scenes
from segxai_cli.explain.split import merge_stats
from segxai_cli.explain.pipeline import SceneStats
from segxai_cli.options import parse_devices, parse_ray_address, parse_shard, scheduler_shard
from segxai_cli.tiling.grid import TileGrid
from segxai_cli.workers import check_pool_options
from segxai_cli.workers.pool import InlinePool

KINDS = ("saliency", "prediction")


# ----------------------------------------------------------------------------- --shard auto
@pytest.mark.parametrize("env,expected", [
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "7"}, (4, 8)),
    ({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5"}, (5, 5)),
    ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "0",
      "SLURM_ARRAY_TASK_MAX": "6", "SLURM_ARRAY_TASK_STEP": "2"}, (4, 4)),  # --array=0-6:2
    ({"JOB_COMPLETION_INDEX": "0", "SEGXAI_SHARD_COUNT": "3"}, (1, 3)),  # Kubernetes Indexed Job
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "9", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}, (10, 10)),
])
def test_shard_auto_reads_each_scheduler(env, expected):
    assert scheduler_shard(env) == expected
    assert parse_shard("auto", env) == expected


@pytest.mark.parametrize("env,message", [
    ({}, "not in a job array"),
    ({"JOB_COMPLETION_INDEX": "2"}, "SEGXAI_SHARD_COUNT"),
    ({"AWS_BATCH_JOB_ARRAY_INDEX": "2"}, "AWS_BATCH_JOB_ARRAY_SIZE"),
    ({"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1",
      "SLURM_ARRAY_TASK_MAX": "8"}, "regular --array"),  # --array=1,3,8
    ({"SLURM_ARRAY_TASK_ID": "x"}, "not a number"),
    ({"JOB_COMPLETION_INDEX": "3", "SEGXAI_SHARD_COUNT": "3"}, "between 1 and N"),
])
def test_shard_auto_errors_say_what_is_missing(env, message):
    with pytest.raises(UsageError, match=message):
        scheduler_shard(env)


@pytest.fixture
def scenes(tmp_path):
    """Three small scenes with nodata holes, and the tiny model's checkpoint."""
    from conftest import write_geotiff

    rng = np.random.default_rng(0)
    folder = tmp_path / "scenes"
    folder.mkdir()
    paths = []
    for i, (h, w) in enumerate([(150, 130), (96, 200), (170, 110)]):
        img = (rng.random((3, h, w)) * 254 + 1).astype(np.uint8)
        img[:, 10 * i:10 * i + 20, 30:70] = 0
        paths.append(write_geotiff(folder / f"s{i}.tif", img, nodata=0))
    return paths


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def assert_same_outputs(a: Path, b: Path, stems, exact: bool = True) -> None:
    for stem in stems:
        for kind in KINDS:
            x, y = read(a / f"{stem}_{kind}.tif"), read(b / f"{stem}_{kind}.tif")
            if exact or kind == "prediction":
                assert np.array_equal(x, y, equal_nan=True), (stem, kind)
            else:
                assert np.array_equal(np.isnan(x), np.isnan(y))
                # batches are grouped differently in blocks: the model's float32 sums differ in the last bits
                np.testing.assert_allclose(np.nan_to_num(x), np.nan_to_num(y), atol=1e-5, rtol=0)
        ra, rb = (json.loads((d / f"{stem}_saliency.json").read_text()) for d in (a, b))
        for k in ("tiles", "tiles_computed", "tiles_nodata", "tiles_outside_region", "valid_pixels", "class_pixels"):
            assert ra["stats"][k] == rb["stats"][k], (stem, k)
        for k in ("scene_min", "scene_max", "mean_saliency"):
            for name, v in ra["stats"][k].items():
                assert rb["stats"][k][name] == (v if exact else pytest.approx(v, abs=1e-5)), (stem, k)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("scheduler", ["slurm", "kubernetes", "aws"])
def test_shard_auto_runs_this_tasks_part(scheduler, scenes, tiny_checkpoint, tmp_path, monkeypatch):
    env = {"slurm": {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "0",
                     "SLURM_ARRAY_TASK_MAX": "2"},
           "kubernetes": {"JOB_COMPLETION_INDEX": "1", "SEGXAI_SHARD_COUNT": "3"},
           "aws": {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "3"}}[scheduler]
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "out"
    run = explain_scenes(scenes[0].parent, out, tiny_checkpoint, shard="auto", methods="gradcam")
    assert [s.input.stem for s in run.scenes] == ["s1"]  # the 2nd of 3 sorted scenes
    assert (out / "s1_saliency.json").exists() and not (out / "s0_saliency.json").exists()


def test_merge_builds_one_summary_of_every_shard(scenes, tiny_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    out = tmp_path / "out"
    for k in (1, 2):
        explain_scenes(scenes[:2], out, tiny_checkpoint, shard=f"{k}/2", methods="gradcam")
    (out / "segxai_scenes.csv").unlink()
    result = CliRunner().invoke(app, ["merge", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "segxai_scenes.csv").open()))
    assert [r["scene"] for r in rows] == ["s0", "s1"]
    assert len(json.loads((out / "segxai_manifest.json").read_text())["scenes"]) == 2


def test_merge_of_a_folder_without_records_is_an_error(tmp_path):
    from typer.testing import CliRunner

    from segxai_cli.cli.app import app

    result = CliRunner().invoke(app, ["merge", str(tmp_path)])
    assert result.exit_code == 1 and "no complete scene record" in result.output


# ----------------------------------------------------------------------------- options
def test_worker_options_are_checked_without_anything_heavy():
    assert parse_devices("cuda:0, cuda:1") == ["cuda:0", "cuda:1"] and parse_devices("all") == "all"
    assert parse_ray_address("local") == "local" and parse_ray_address("10.0.0.5:6379") == "10.0.0.5:6379"
    assert parse_ray_address("ray://head:10001") == "ray://head:10001"
    for bad, fn in (("gpu0", parse_devices), ("cuda:0,cuda:0", parse_devices), ("scenes/", parse_ray_address)):
        with pytest.raises(UsageError):
            fn(bad)
    with pytest.raises(UsageError, match="--workers"):
        check_pool_options(None, "cuda:0", 2)
    with pytest.raises(UsageError, match="at least 1"):
        check_pool_options(None, None, 0)
    with pytest.raises(UsageError, match="--split"):
        choose_executor(split=2)
    with pytest.raises(UsageError, match="--split"):
        choose_executor(workers=2, split="x")


def test_missing_ray_names_the_extra(monkeypatch):
    import importlib.util

    from segxai_cli.workers.ray import require_ray

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'segxai\[ray\]'"):
        require_ray()


# ----------------------------------------------------------------------------- split scenes
def test_row_bands_cover_the_scene_and_blocks_see_every_window_that_touches_them():
    grid = TileGrid(100, 1000, 64, 16)
    bands = grid.row_bands(4)
    assert len(bands) == 4 and bands[0][0] == 0 and bands[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))
    assert all(y0 in grid.rows for y0, _ in bands)
    everything = list(grid.windows())
    for y0, y1 in bands:
        mine = list(grid.windows((y0, y1)))
        touching = [w for w in everything if w.row_off < y1 and w.row_off + w.height > y0]
        assert mine == touching
    assert grid.row_bands(100) == [(r, b) for r, b in zip(grid.rows, grid.rows[1:] + [1000])]


def test_merged_statistics_are_the_whole_scenes():
    parts = [SceneStats(width=4, height=6, tiles=2, valid_pixels=8, counted_pixels=8, minimum=[0.5], maximum=[2.0],
                        sum_raw=[9.0], seconds=1.0),
             SceneStats(width=4, height=6, tiles=1, valid_pixels=0, counted_pixels=0, minimum=[float("nan")],
                        maximum=[float("nan")], sum_raw=[0.0], seconds=3.0),
             SceneStats(width=4, height=6, tiles=3, valid_pixels=4, counted_pixels=4, minimum=[-1.0], maximum=[1.5],
                        sum_raw=[3.0], seconds=2.0)]
    m = merge_stats(parts)
    assert (m.tiles, m.valid_pixels, m.counted_pixels) == (6, 12, 12)
    assert (m.minimum, m.maximum, m.sum_raw, m.mean_raw, m.seconds) == ([-1.0], [2.0], [12.0], [1.0], 3.0)


@pytest.mark.parametrize("count,options", [
    (3, {"methods": "gradcam,hirescam"}),
    (1, {"methods": "gradcam", "overlap": 0.5, "bbox": "500003.0,4999960.0,500030.0,4999990.0"}),  # clipped region
    (1, {"methods": "gradcam", "normalize": "none"}),
])
def test_split_scene_equals_the_whole_scene_run(scenes, tiny_checkpoint, tmp_path, count, options):
    one, split = tmp_path / "one", tmp_path / "split"
    explain_scenes(scenes[:count], one, tiny_checkpoint, **options)
    run = explain_scenes(scenes[:count], split, tiny_checkpoint, executor=PoolExecutor(InlinePool, split=3), **options)
    assert run.ok and run.counts()["done"] == count
    assert_same_outputs(one, split, [f"s{i}" for i in range(count)], exact=False)
    assert leftovers(split) == []


def test_split_scene_failure_leaves_nothing(scenes, tiny_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SEGXAI_FAULT", "write@2:eio")
    from segxai_cli import faults

    faults.reset()
    run = explain_scenes(scenes[:1], tmp_path / "out", tiny_checkpoint, executor=PoolExecutor(InlinePool, split=3))
    faults.reset()
    assert run.counts()["failed"] == 1 and "input/output error" in run.scenes[0].error.lower()
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


# ----------------------------------------------------------------------------- worker processes
def test_worker_processes_retry_a_killed_workers_scene(scenes, tiny_checkpoint, tmp_path, monkeypatch):
    """Two worker processes; the first to reach its 2nd batch is killed (SIGKILL): its scene runs again
    on a worker and every output equals the one-process run's."""
    one, out = tmp_path / "one", tmp_path / "out"
    explain_scenes(scenes, one, tiny_checkpoint)
    monkeypatch.setenv("SEGXAI_FAULT", "compute@2:sigkill")
    monkeypatch.setenv("SEGXAI_FAULT_ONCE", str(tmp_path / "fired"))
    run = explain_scenes(scenes, out, tiny_checkpoint, executor=choose_executor(workers=2))
    assert (tmp_path / "fired").exists()
    assert run.ok and run.counts()["done"] == 3
    assert_same_outputs(one, out, ["s0", "s1", "s2"])
    assert leftovers(out) == []
    rows = list(csv.DictReader((out / "segxai_scenes.csv").open()))
    assert [r["scene"] for r in rows] == ["s0", "s1", "s2"]


@pytest.mark.gpu
def test_devices_all_runs_a_worker_per_gpu_like_one_process(scenes, tiny_checkpoint, tmp_path):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    one, out = tmp_path / "one", tmp_path / "out"
    explain_scenes(scenes, one, tiny_checkpoint, device="cuda:0")
    run = explain_scenes(scenes, out, tiny_checkpoint, executor=choose_executor(devices="all"))
    assert run.ok and run.counts()["done"] == 3
    assert_same_outputs(one, out, ["s0", "s1", "s2"], exact=False)  # cuDNN picks its own algorithms per process

"""The fault suite: segxai under cron — full disks, write errors, signals, lying checkpoints, concurrency.

Every case breaks a real ``segxai explain`` run at a named moment (``SEGXAI_FAULT``, see
``segxai_cli/faults.py``) and checks what an operator relies on: exit code and one line on stderr;
no temp file left; nothing of the broken scene under a final name and no completion record; and a
rerun with ``--skip-existing`` that ends with outputs equal to an uninterrupted run. Run alone with
``uv run pytest -m faults``.

Most cases run the CLI in-process (signals are delivered to this process's main thread, as in a real
run); SIGKILL, concurrency and the cron environment need real subprocesses.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from typer.testing import CliRunner

from conftest import tiny_model_info, write_geotiff
from segxai_cli import faults
from segxai_cli.cli.app import app
from segxai_cli.errors import InputError
from segxai_cli.files import TEMP_TAG
from segxai_cli.model.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from segxai_cli.model.families import build_model

pytestmark = pytest.mark.faults

SCENES = ("a", "b")
STAGES = ("read", "compute", "write", "convert", "verify", "commit", "record")
SIGNALS = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM, "sighup": signal.SIGHUP}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Two small scenes, a tiny checkpoint, and the outputs of an uninterrupted run (the reference)."""
    d = tmp_path_factory.mktemp("faults")
    rng = np.random.default_rng(0)
    for name in SCENES:
        write_geotiff(d / f"{name}.tif", rng.integers(0, 255, (3, 96, 160), dtype=np.uint8))
    torch.manual_seed(0)
    info = tiny_model_info()
    model = save_checkpoint(d / "tiny.pt", build_model(info), info)
    ref = d / "ref"
    res = explain(d, ref, model)
    assert res.exit_code == 0, res.output
    return d, model, ref


def explain(d: Path, out: Path, model: Path, *extra: str, fault: str | None = None):
    faults.reset()
    env = {"SEGXAI_FAULT": fault} if fault else {}
    args = ["explain", *(str(d / f"{n}.tif") for n in SCENES), "-o", str(out), "-m", str(model), "--device", "cpu",
            "--method", "gradcam,eigencam", "-q", *extra]
    return CliRunner().invoke(app, args, env=env)


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_TAG in p.name) if folder.exists() else []


def scene_files(folder: Path, stem: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f"{stem}_")) if folder.exists() else []


def assert_equal_outputs(out: Path, ref: Path) -> None:
    for stem in SCENES:
        for kind in ("saliency", "prediction"):
            with rasterio.open(out / f"{stem}_{kind}.tif") as a, rasterio.open(ref / f"{stem}_{kind}.tif") as b:
                assert np.array_equal(a.read(), b.read(), equal_nan=True), (stem, kind)
                assert a.descriptions == b.descriptions and a.crs == b.crs and a.transform == b.transform
        assert scene_files(out, stem) == scene_files(ref, stem)
    rows = (out / "segxai_scenes.csv").read_text().splitlines()
    assert len(rows) == 1 + len(SCENES)


def resume_and_check(d, out, model, ref) -> None:
    res = explain(d, out, model, "--skip-existing")
    assert res.exit_code == 0, res.output
    assert temps(out) == []
    assert_equal_outputs(out, ref)


# ----------------------------------------------------------------------------- write errors
@pytest.mark.parametrize("stage", ["write", "convert", "verify", "commit", "record"])
def test_write_error_at_each_stage_fails_the_scene_cleanly(setup, tmp_path, stage):
    d, model, ref = setup
    out = tmp_path / "out"
    res = explain(d, out, model, fault=f"{stage}:enospc")
    assert res.exit_code == 1
    errors = [line for line in res.stderr.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 1 and "a_" in errors[0] and "no space left" in errors[0].lower(), res.stderr
    assert temps(out) == []
    assert scene_files(out, "a") == []  # nothing of the failed scene under a final name, no record
    assert scene_files(out, "b") == scene_files(ref, "b")  # the other scene is complete
    resume_and_check(d, out, model, ref)


def test_read_error_fails_that_scene_only(setup, tmp_path):
    d, model, ref = setup
    out = tmp_path / "out"
    res = explain(d, out, model, fault="read:eio")
    assert res.exit_code == 1 and "Input/output error" in res.stderr
    assert temps(out) == [] and scene_files(out, "a") == [] and scene_files(out, "b") == scene_files(ref, "b")
    resume_and_check(d, out, model, ref)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_full_disk_real_tmpfs(setup, tmp_path):
    """A real full disk (a small tmpfs; root only): GDAL reports it as a warning while writing, the
    file would be truncated — the read-back check catches it, the scene fails, a rerun with space redoes it."""
    d, model, ref = setup
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "120k"):
        pytest.skip("needs root and mount for a tmpfs")
    try:
        out = disk / "out"
        res = explain(d, out, model)
        assert res.exit_code == 1, res.output
        assert "no space left on device" in res.stderr
        assert temps(out) == []
        done = [s for s in SCENES if (out / f"{s}_saliency.json").exists()]
        for s in SCENES:
            if s not in done:
                assert scene_files(out, s) == [], s
            else:
                with rasterio.open(out / f"{s}_saliency.tif") as src:
                    src.read()  # a published file is complete
        subprocess.run(["mount", "-o", "remount,size=20m", str(disk)], check=True)
        resume_and_check(d, out, model, ref)
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


# ----------------------------------------------------------------------------- signals
SIGNAL_CASES = [(stage, "sigterm") for stage in STAGES] + [
    (stage, sig) for sig in ("sigint", "sighup") for stage in ("compute", "convert")]


@pytest.mark.parametrize("stage,sig", SIGNAL_CASES)
def test_signal_at_each_stage_cleans_up_and_resumes(setup, tmp_path, stage, sig):
    d, model, ref = setup
    out = tmp_path / "out"
    res = explain(d, out, model, fault=f"{stage}:{sig}")
    assert res.exit_code == 128 + SIGNALS[sig], res.output
    assert res.stderr.strip().splitlines()[-1] == "interrupted"
    assert temps(out) == []
    assert scene_files(out, "a") == [] and scene_files(out, "b") == []  # interrupted at scene a
    resume_and_check(d, out, model, ref)


def _cli_subprocess(d, out, model, *extra, env_extra=None, **kw):
    env = {**os.environ, **(env_extra or {})}
    args = [sys.executable, "-m", "segxai_cli.cli.app", "explain", *(str(d / f"{n}.tif") for n in SCENES), "-o",
            str(out), "-m", str(model), "--device", "cpu", "--method", "gradcam,eigencam", *extra]
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.mark.parametrize("stage", ["write", "convert"])
def test_sigkill_then_rerun(setup, tmp_path, stage):
    """SIGKILL cannot be handled: temp files stay, the rerun removes them and redoes the scene."""
    d, model, ref = setup
    out = tmp_path / "out"
    proc = _cli_subprocess(d, out, model, "-q", env_extra={"SEGXAI_FAULT": f"{stage}:sigkill"})
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "a_saliency.json").exists()
    resume_and_check(d, out, model, ref)


# ----------------------------------------------------------------------------- concurrency, cron
def test_concurrent_shards_on_one_folder(setup, tmp_path):
    d, model, ref = setup
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "segxai_cli.cli.app", "explain",
                               *(str(d / f"{n}.tif") for n in SCENES), "-o", str(out), "-m", str(model),
                               "--device", "cpu", "--method", "gradcam,eigencam", "-q", "--shard", f"{k}/2"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for k in (1, 2)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    res = explain(d, out, model, "--skip-existing")  # rebuilds the summary from both shards' records
    assert res.exit_code == 0 and temps(out) == []
    assert_equal_outputs(out, ref)


def test_cron_environment_no_tty_no_ansi_progress_lines_json(setup, tmp_path):
    d, model, _ = setup
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    proc = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
                           "segxai_cli.cli.app", "explain", *(str(d / f"{n}.tif") for n in SCENES), "-o",
                           str(tmp_path / "out"), "-m", str(model), "--device", "cpu", "--json"],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                          cwd=str(Path(__file__).resolve().parents[1]))
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stderr + proc.stdout
    progress = [line for line in proc.stderr.splitlines() if line.startswith("progress: scene")]
    assert any("scene 1/2 a.tif" in p for p in progress) and any("scene 2/2 b.tif 100%" in p for p in progress)
    summary = json.loads(proc.stdout)
    assert summary["done"] == 2 and summary["failed"] == 0
    quiet = subprocess.run(["env", "-i", *(f"{k}={v}" for k, v in env.items()), sys.executable, "-m",
                            "segxai_cli.cli.app", "explain", str(d / "a.tif"), "-o", str(tmp_path / "q"), "-m",
                            str(model), "--device", "cpu", "-q"], capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=300, cwd=str(Path(__file__).resolve().parents[1]))
    assert quiet.returncode == 0 and quiet.stderr == ""


# ----------------------------------------------------------------------------- lying checkpoints
LIES = {
    "tile_size": (2**20, "tile_size=1048576 is out of range"),
    "in_channels": (0, "in_channels=0 is out of range"),
    "classes": ("two", "classes='two' must be an integer"),
    "bands": ([0, 1, 2], "bands=[0, 1, 2] must list 3 band"),
    "class_names": (["only one"], "class_names=['only one'] must list 2"),
    "target_class": (7, "target_class=7 is out of range"),
    "band_stats": ({"mean": [1.0, 2.0, 3.0], "std": [1.0, 0.0, 1.0]}, "standard deviation <= 0"),
    "source_dtype": ("complex128", "not a raster data type"),
    "arch": ("", "arch='' must be a non-empty name"),
    "model_kwargs": ("lots", "model_kwargs='lots' must be a dict"),
}


@pytest.mark.parametrize("field", sorted(LIES))
def test_lying_checkpoint_field_is_one_clear_error(setup, tmp_path, field):
    _, model, _ = setup
    obj = torch.load(model, weights_only=True)
    value, message = LIES[field]
    obj["meta"][field] = value
    lying = tmp_path / "lying.pt"
    torch.save(obj, lying)
    with pytest.raises(InputError, match="lying.pt") as exc:
        load_checkpoint(lying)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert obj["format"] == FORMAT


def test_lying_band_stats_nan_and_tile_not_multiple_of_stride(setup, tmp_path):
    d, model, _ = setup
    obj = torch.load(model, weights_only=True)
    obj["meta"]["band_stats"]["mean"][0] = float("nan")
    torch.save(obj, tmp_path / "nan.pt")
    with pytest.raises(InputError, match="finite"):
        load_checkpoint(tmp_path / "nan.pt")
    obj = torch.load(model, weights_only=True)
    obj["meta"]["tile_size"] = 68  # the tiny U-Net (encoder depth 3) takes multiples of 8
    torch.save(obj, tmp_path / "stride.pt")
    res = CliRunner().invoke(app, ["explain", str(d / "a.tif"), "-o", str(tmp_path / "o"), "-m",
                                   str(tmp_path / "stride.pt"), "--device", "cpu"])
    assert res.exit_code == 1 and "checkpoint tile_size 68: must be a multiple of 8" in res.stderr
    res = CliRunner().invoke(app, ["explain", str(d / "a.tif"), "-o", str(tmp_path / "o"), "-m", str(model),
                                   "--tile-size", "68", "--device", "cpu"])
    assert res.exit_code == 2 and "--tile-size 68: must be a multiple of 8" in res.stderr

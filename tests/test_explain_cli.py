"""``segxai explain`` end to end: options, exit codes, batch/cron behaviour, resume after a kill."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.synth import generate_scene

runner = CliRunner()


def _scenes(make_geotiff, n=3, size=96):
    out = []
    for i in range(n):
        img, _, _ = generate_scene(size, size, i + 1)
        out.append(make_geotiff(f"s{i}.tif", img))
    return out


def test_explain_json_summary_and_outputs(tmp_path, make_geotiff, tiny_checkpoint):
    (scene,) = _scenes(make_geotiff, 1)
    out = tmp_path / "out"
    res = runner.invoke(app, ["explain", str(scene), "-m", str(tiny_checkpoint), "-o", str(out), "--json",
                              "--method", "gradcam,hirescam", "--class", "building", "-q"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["done"] == 1 and summary["failed"] == 0
    assert summary["scenes"][0]["outputs"]["saliency"].endswith("s0_saliency.tif")
    assert res.stderr == ""  # -q: nothing on stderr, no progress bar (not a TTY anyway)
    with rasterio.open(out / "s0_saliency.tif") as src:
        assert src.descriptions == ("gradcam", "hirescam")
    man = json.loads((out / "segxai_manifest.json").read_text())
    assert man["last_run"]["model"]["sha256"] and man["scenes"][0]["options"]["target_class"] == 1
    assert "torch" in man["last_run"]["environment"]


def test_refuses_overwrite_then_skip_existing_then_overwrite(tmp_path, make_geotiff, tiny_checkpoint):
    (scene,) = _scenes(make_geotiff, 1)
    args = ["explain", str(scene), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out")]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 1
    assert "exists (use --overwrite" in again.stderr and "Traceback" not in again.output
    skip = runner.invoke(app, args + ["--skip-existing"])
    assert skip.exit_code == 0 and "1 skipped" in skip.stderr
    assert runner.invoke(app, args + ["--overwrite"]).exit_code == 0
    both = runner.invoke(app, args + ["--overwrite", "--skip-existing"])
    assert both.exit_code == 2


def test_failed_input_is_reported_others_processed_exit_1(tmp_path, make_geotiff, tiny_checkpoint):
    good = _scenes(make_geotiff, 2)
    gray = make_geotiff("gray.tif", np.full((64, 64), 100, np.uint8))
    out = tmp_path / "out"
    res = runner.invoke(app, ["explain", str(good[0]), str(gray), str(good[1]), str(tmp_path / "nope.tif"),
                              "-m", str(tiny_checkpoint), "-o", str(out)])
    assert res.exit_code == 1
    assert "gray.tif: has 1 band(s) but the model takes 3" in res.stderr
    assert "nope.tif: no such file" in res.stderr
    assert "2 done, 0 skipped, 2 failed" in res.stderr
    assert (out / "s0_saliency.json").exists() and (out / "s1_saliency.json").exists()
    assert not list(out.glob("gray*")) and not list(out.glob(".*"))


def test_shards_partition_the_inputs_and_share_one_csv(tmp_path, make_geotiff, tiny_checkpoint):
    _scenes(make_geotiff, 3, size=64)
    out = tmp_path / "out"
    done = []
    for k in (1, 2):
        res = runner.invoke(app, ["explain", str(tmp_path / "s*.tif"), "-m", str(tiny_checkpoint), "-o", str(out),
                                  "--shard", f"{k}/2", "--json", "-q"])
        assert res.exit_code == 0, res.output
        done.append(sorted(Path(s["input"]).name for s in json.loads(res.stdout)["scenes"]))
    assert done == [["s0.tif", "s2.tif"], ["s1.tif"]]
    rows = list(csv.DictReader((out / "segxai_scenes.csv").open()))
    assert [r["scene"] for r in rows] == ["s0", "s1", "s2"]
    assert float(rows[0]["megapixels_per_s"]) > 0 and 0 <= float(rows[0]["mean_gradcam"]) <= 1
    bad = runner.invoke(app, ["explain", str(tmp_path / "s0.tif"), "-o", str(out), "--shard", "3/2"])
    assert bad.exit_code == 2


def test_unwritable_output_folder_is_one_line_error(tmp_path, make_geotiff, tiny_checkpoint):
    (scene,) = _scenes(make_geotiff, 1, size=64)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = runner.invoke(app, ["explain", str(scene), "-m", str(tiny_checkpoint), "-o", str(blocker / "out")])
    assert res.exit_code == 1
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "cannot create output folder" in lines[0]


def test_unknown_method_and_layer_and_class(tmp_path, make_geotiff, tiny_checkpoint):
    (scene,) = _scenes(make_geotiff, 1, size=64)
    base = ["explain", str(scene), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "o")]
    r = runner.invoke(app, base + ["--method", "gradkam"])
    assert r.exit_code == 2 and "unknown method 'gradkam'" in r.stderr
    r = runner.invoke(app, base + ["--class", "tree"])
    assert r.exit_code == 2 and "0=background, 1=building" in r.stderr
    r = runner.invoke(app, base + ["--layer", "decoder.blocks.9"])
    assert r.exit_code == 2 and "unknown layer" in r.stderr
    r = runner.invoke(app, base + ["--bbox", "1,2,3"])
    assert r.exit_code == 2


def _read_outputs(out: Path) -> dict:
    res = {}
    for p in sorted(out.glob("*.tif")):
        with rasterio.open(p) as src:
            res[p.name] = (src.read(), src.descriptions, src.crs, src.transform)
    return res


@pytest.mark.slow
def test_killed_run_resumed_with_the_same_command_gives_the_same_outputs(tmp_path, make_geotiff, tiny_checkpoint):
    """kill -9 in the middle of a batch, rerun the same command: same outputs as one clean run."""
    scenes = _scenes(make_geotiff, 3, size=96)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", "from segxai_cli.cli.app import main; main()", "explain", *map(str, scenes),
           "-m", str(tiny_checkpoint), "-o", str(out), "--skip-existing", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    killed_with_temps = False
    while time.time() < deadline and proc.poll() is None:
        if list(out.glob("*_saliency.json")) and list(out.glob(".*segxai-tmp*")):
            killed_with_temps = True
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    if not killed_with_temps:
        pytest.skip("the run finished before it could be killed mid-scene (machine too fast/slow)")
    assert len(list(out.glob("*_saliency.json"))) < 3  # really interrupted
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    # the reference: one uninterrupted run with the same options (in-process, same single thread)
    import torch

    from segxai_cli.explain import explain_scenes

    ref = tmp_path / "ref"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert explain_scenes(scenes, ref, model=str(tiny_checkpoint), skip_existing=True).ok
    finally:
        torch.set_num_threads(threads)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in ref.iterdir())  # no temp files left, nothing missing
    got, want = _read_outputs(out), _read_outputs(ref)
    assert got.keys() == want.keys() and len(got) == 6
    for k in want:
        np.testing.assert_allclose(got[k][0], want[k][0], rtol=0, atol=1e-6)
        assert got[k][1:] == want[k][1:]
    rows = list(csv.DictReader((out / "segxai_scenes.csv").open()))
    assert [r["scene"] for r in rows] == ["s0", "s1", "s2"]

"""Progress for people and for log files: a bar on a terminal, parseable throttled lines elsewhere."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from segxai_cli.cli import console
from segxai_cli.cli.app import app


def test_line_progress_is_throttled_and_parseable(capsys, monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0, 100.0])
    monkeypatch.setattr(console.time, "monotonic", lambda: next(clock))
    advance = console.Progress("scene", terminal=False)(3, 40, "scene_03.tif", total=10, megapixels=2.0)
    advance(1)  # t=1: within 30 s of the start line, silent
    advance(1)  # t=2: silent
    advance(3)  # t=40: a line (50 %)
    advance(4)  # t=41: silent
    advance(1)  # t=100: done, a line
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "progress: scene 3/40 scene_03.tif 0%"
    assert lines[1].startswith("progress: scene 3/40 scene_03.tif 50% 0.03 MP/s eta 00:40")
    assert lines[2].startswith("progress: scene 3/40 scene_03.tif 100%") and "in 01:40" in lines[2]
    assert len(lines) == 3


def test_quiet_prints_nothing(capsys):
    advance = console.Progress("scene", quiet=True, terminal=False)(1, 1, "a.tif", total=5)
    advance(5)
    assert capsys.readouterr().err == ""


def test_evaluate_prints_progress_lines_in_logs(make_geotiff, tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(0)
    scene = make_geotiff("s1.tif", rng.integers(0, 255, (3, 64, 128), dtype=np.uint8))
    res = CliRunner().invoke(app, ["evaluate", str(scene), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "r.csv"),
                                   "--method", "gradcam", "--curve-steps", "0", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stderr.splitlines() if line.startswith("progress:")]
    assert lines[0] == "progress: scene 1/1 s1.tif 0%" and lines[-1].startswith("progress: scene 1/1 s1.tif 100%")
    assert "\x1b[" not in res.stderr

"""The CLI answers at once: help, version and every typo are handled without importing torch or rasterio.

Each case runs ``segxai`` in a fresh interpreter (as a user would) and checks which modules were
imported, the exit code and that the error is one line. Wall-clock targets are measured with
farm-bench/the benchmarks, not here; what is tested is the cause of slowness: the heavy imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEAVY = ("torch", "rasterio", "segmentation_models_pytorch", "fiona", "matplotlib")

PROBE = r"""
import json, sys
from segxai_cli.cli.app import app
try:
    app(args=sys.argv[1:], prog_name="segxai")
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(HEAVY)))
print("\n" + json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def run_cli(*args: str, cwd: Path | None = None) -> tuple[int, list[str], str]:
    proc = subprocess.run([sys.executable, "-c", PROBE.replace("HEAVY", repr(json.dumps(HEAVY))), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    *err, last = proc.stderr.rstrip("\n").split("\n")
    info = json.loads(last)
    return info["code"], info["heavy"], "\n".join(err).strip()


@pytest.mark.parametrize("args", [
    ["--help"], ["--version"], ["explain", "--help"], ["evaluate", "--help"], ["threshold-sweep", "--help"],
    ["train", "--help"], ["layers", "--help"], ["info", "--help"], ["import", "--help"], ["synth", "--help"],
    ["report", "--help"],
    ["merge", "--help"],
])
def test_help_and_version_import_nothing_heavy(args):
    code, heavy, _ = run_cli(*args)
    assert code == 0 and heavy == []


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    from conftest import write_geotiff

    d = tmp_path_factory.mktemp("fast")
    return write_geotiff(d / "s.tif", np.zeros((3, 16, 16), np.uint8))


TYPOS = [
    (["--method", "gradkam"], "unknown method 'gradkam'"),
    (["--layer", "decoder.2+"], "--layer"),
    (["--layer", ""], "--layer"),
    (["--bbox", "1,2,3"], "--bbox"),
    (["--bbox", "3,2,1,4"], "minx < maxx"),
    (["-b", ""], "-b/--bidx"),
    (["-b", "0,1,2"], "bands are numbered from 1"),
    (["-b", "1,x"], "-b/--bidx"),
    (["--overlap", "0.95"], "--overlap"),
    (["--tile-size", "5"], "--tile-size"),
    (["--normalize", "global"], "--normalize"),
    (["--autocast", "fp8"], "--autocast"),
    (["--compress", "jpeg"], "--compress"),
    (["--shard", "3/2"], "--shard"),
    (["--shard", "x"], "--shard"),
    (["--overwrite", "--skip-existing"], "not both"),
    (["--region-mask", "m.tif", "--bbox", "0,0,1,1"], "at most one region"),
    (["--shard", "auto"], "not in a job array"),
    (["--ray", "scenes/"], "--ray"),
    (["--devices", "gpu0"], "--devices"),
    (["--workers", "0"], "--workers"),
    (["--workers", "2", "--devices", "cpu"], "--workers"),
    (["--split", "2"], "--split"),
    (["--workers", "2", "--split", "many"], "--split"),
    (["--workers", "2", "--device", "cuda:0"], "--device"),
    (["--assets", "B04,,B02"], "--assets"),
    (["-b", "red,gr een"], "-b/--bidx"),
    (["-b", "red,2"], "-b/--bidx"),
    (["--inputs-from", "no-such-list.txt"], "--inputs-from"),
]


@pytest.mark.parametrize("extra,message", TYPOS)
def test_explain_typos_fail_before_anything_heavy(tmp_path, scene, extra, message):
    code, heavy, err = run_cli("explain", str(scene), "-o", str(tmp_path / "out"), *extra)
    assert code == 2, err
    assert heavy == [], f"{extra}: imported {heavy}"
    assert err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("cmd,extra,message", [
    ("evaluate", ["--threshold", "1.5"], "--threshold"),
    ("evaluate", ["--method", "nocam"], "nocam"),
    ("evaluate", ["--curve-steps", "1"], "--curve-steps"),
    ("evaluate", ["--fill", "median"], "--fill"),
    ("threshold-sweep", ["--threshold", "0.1:0.5:-1"], "--threshold"),
    ("evaluate", ["-b", "0"], "bands are numbered from 1"),
    ("evaluate", ["--budget", "150%"], "--budget"),
    ("threshold-sweep", ["--budget", "0"], "--budget"),
    ("evaluate", ["--bootstrap", "10"], "--bootstrap"),
    ("evaluate", ["--sanity", "--sanity-threshold", "1.5"], "--sanity-threshold"),
    ("evaluate", ["--feature-id", "name"], "--feature-id needs --vector"),
    ("evaluate", ["--workers", "0"], "--workers"),
    ("threshold-sweep", ["--ray", "here"], "--ray"),
])
def test_study_typos_fail_before_anything_heavy(tmp_path, scene, cmd, extra, message):
    code, heavy, err = run_cli(cmd, str(scene), "-o", str(tmp_path / "r.csv"), *extra)
    assert code == 2 and heavy == [] and err.startswith("error: ") and message in err, (heavy, err)
    assert not (tmp_path / "r.csv").exists()


def test_train_typos_fail_before_anything_heavy(tmp_path, scene):
    for extra, message in ((["--epochs", "0"], "--epochs"), (["--loss", "l2"], "--loss"),
                           (["--classes", "2", "--class-names", "a,b,c"], "--class-names")):
        code, heavy, err = run_cli("train", str(scene), str(scene), "-o", str(tmp_path / "m.pt"), *extra)
        assert code == 2 and heavy == [] and message in err, (extra, heavy, err)


def test_missing_input_and_existing_output_fail_without_the_model(tmp_path, scene):
    code, heavy, err = run_cli("explain", str(tmp_path / "nope.tif"), "-o", str(tmp_path / "out"))
    assert code == 1 and heavy == [] and "nope.tif: no such file" in err
    out = tmp_path / "out2"
    out.mkdir()
    (out / "s_saliency.tif").write_bytes(b"x")
    code, heavy, err = run_cli("explain", str(scene), "-o", str(out))
    assert code == 1 and heavy == [] and "exists" in err


def test_report_of_a_folder_without_outputs_is_one_line_error(tmp_path):
    code, heavy, err = run_cli("report", str(tmp_path))
    assert code == 1 and heavy == [] and err.startswith("error: ") and "no segxai outputs" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "report.html").exists()
    code, _, err = run_cli("report", str(tmp_path / "nope"))
    assert code == 1 and "no such folder" in err


def test_unknown_option_is_one_line_usage_error():
    code, heavy, err = run_cli("explain", "x.tif", "-o", "o", "--methd", "gradcam")
    assert code == 2 and heavy == [] and err.startswith("error: ") and len(err.splitlines()) == 1

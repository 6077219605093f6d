"""benchmarks/gpu_check.sh: its CPU dry run passes every step (so the first GPU run cannot fail on a
typo), and its summary reads nvidia-smi samples and goals right (hand-made GPU run outputs)."""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _summary_module():
    spec = importlib.util.spec_from_file_location("gpu_check_summary", ROOT / "benchmarks" / "gpu_check_summary.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow  # about a minute on 2 cores: five Python processes' start-up and imports
@pytest.mark.skipif(shutil.which("uv") is None or shutil.which("timeout") is None, reason="needs uv and timeout")
def test_cpu_dry_run_runs_every_step(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "SEGXAI_BENCH_CACHE": str(tmp_path / "cache")}
    env.pop("OUT", None)
    proc = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    s = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    status = {t["name"]: t["status"] for t in s["steps"]}
    assert status == {"sync": "ok", "env": "ok", "scene": "ok", "gpu-tests": "ok", "cam-fp32": "ok",
                      "cam-bf16": "ok", "nvidia-smi": "skipped (no GPU)", "explain": "ok"}, status
    goals = {g["goal"]: g for g in s["goals"]}
    assert len(goals) == 4 and not s["measured"] and not s["all_goals_met"]
    for g in list(goals.values())[:3]:  # computed from the benchmarks' JSON, labelled as a dry run
        assert g["value"] is not None and g["verdict"].startswith("dry run (would be "), g
    assert goals["GPU busy during explain x5"]["verdict"].startswith("skipped")
    assert any(i["what"].startswith("reader alone") for i in s["info"])
    assert (out / "summary.md").read_text().startswith("# GPU check: dry run")
    log = (out / "logs" / "gpu-tests.log").read_text()
    assert "skipped" in log or "passed" in log, log  # skipped without CUDA


def test_bad_option_is_refused_before_anything_runs(tmp_path):
    proc = subprocess.run(["bash", str(SCRIPT), "--devcie", "cpu", "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown option --devcie" in proc.stderr
    assert not (tmp_path / "o").exists()


def _smi_line(t: float, uuid: str, util: int, mem: int) -> str:
    ts = datetime.datetime.fromtimestamp(t).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]  # nvidia-smi's format
    return f"{ts}, {uuid}, {util} %, {mem} MiB"


def test_summary_of_a_gpu_run(tmp_path):
    """Samples of our GPU inside the explain x5 windows are averaged; others and the other GPU are not."""
    t0 = 1_800_000_000.0
    (tmp_path / "cam_fp32.json").write_text(json.dumps({"ratio_a": 1.1, "grad_layer": "decoder.blocks.2",
                                                        "tiles": [16, 3, 512, 512]}))
    (tmp_path / "cam_bf16.json").write_text(json.dumps({"ratio_a": 1.3}))
    tp = {"ratio": 0.8, "explain5_mp_s": 40.0, "inference_mp_s": 50.0, "read_mp_s": 45.0,
          "read_wait_s": {"explain5": [0.5, 0.5]}, "runs_s": {"explain5": [2.0, 2.0]}, "scene": "8192x8192",
          "tile": 256, "batch_size": 32, "model": "m", "device": "H200", "gpu_uuid": "GPU-b",
          "windows": {"inference": [[t0, t0 + 2]], "explain5": [[t0 + 2, t0 + 4], [t0 + 6, t0 + 8]]}}
    (tmp_path / "explain.json").write_text(json.dumps({"throughput": tp}))
    rows = ["timestamp, uuid, utilization.gpu [%], memory.used [MiB]"]
    rows += [_smi_line(t0 + 0.5 + 0.2 * i, "GPU-a", 100, 90000) for i in range(40)]  # another job's GPU
    rows += [_smi_line(t0 + 0.5, "GPU-b", 50, 1000), _smi_line(t0 + 3, "GPU-b", 100, 5000),
             _smi_line(t0 + 5, "GPU-b", 0, 5000), _smi_line(t0 + 7, "GPU-b", 90, 6000), "2026/11/28 12:00:0"]
    (tmp_path / "nvidia_smi.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "steps.tsv").write_text("sync\t0\t50.0\t300\nenv\t0\t3.1\t90\ngpu-tests\t1\t20.0\t240\n"
                                        "cam-fp32\t124\t180.2\t180\nnvidia-smi\t0\t0\t-\n")
    mod = _summary_module()
    assert mod.main([str(tmp_path), "--device", "cuda"]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    verdicts = [(g["value"], g["verdict"]) for g in s["goals"]]
    assert verdicts == [("1.10", "PASS"), ("1.30", "FAIL"), ("80%", "PASS"), ("95 %", "PASS")]
    info = {i["what"]: i["value"] for i in s["info"]}
    assert info["GPU busy during inference"] == "50 %" and info["explain x5 waited on the reader"] == "25% of its time"
    assert s["failed_steps"] == ["gpu-tests", "cam-fp32"] and not s["all_goals_met"]
    assert "TIMEOUT after 180 s" in (tmp_path / "summary.md").read_text()


def test_summary_without_outputs_never_passes(tmp_path):
    s = _summary_module().evaluate(tmp_path, "cuda", quick=False)
    assert [g["verdict"] for g in s["goals"]] == ["FAIL (no data)"] * 4 and not s["all_goals_met"]


def test_summary_of_unexpected_output_says_incomplete(tmp_path):
    (tmp_path / "explain.json").write_text(json.dumps({"throughput": {"ratio": 0.5}}))  # keys missing
    (tmp_path / "steps.tsv").write_text("env\t0\t1.0\t90\nsync\t-\t0\t-\t--no-sync\n")
    assert _summary_module().main([str(tmp_path)]) == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["failed_steps"] == ["summary"] and not s["all_goals_met"]
    assert "INCOMPLETE" in (tmp_path / "summary.md").read_text()

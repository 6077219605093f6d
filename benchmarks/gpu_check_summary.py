"""Summary of a ``benchmarks/gpu_check.sh`` run: the goals with PASS/FAIL, the steps, the evidence.

    python benchmarks/gpu_check_summary.py OUTDIR [--device cuda] [--quick]

Reads what the steps left in OUTDIR (``steps.tsv``, ``cam_fp32.json``, ``cam_bf16.json``,
``explain.json``, ``nvidia_smi.csv``) and writes ``summary.md`` and ``summary.json`` there. Any input
may be missing (its step failed): the goal then reads "no data" and never PASS. Standard library
only, so it runs even when the environment is broken.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import subprocess
from pathlib import Path
from typing import Optional

GOAL_CAM = 1.2  # 5 gradient CAMs / plain forward
GOAL_EXPLAIN = 0.70  # explain x5 / inference throughput
GOAL_BUSY = 90.0  # % GPU utilisation during the explain runs
TS_FORMAT = "%Y/%m/%d %H:%M:%S.%f"  # nvidia-smi's timestamp


def load_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_steps(path: Path) -> list[dict]:
    """``name<TAB>rc<TAB>seconds<TAB>limit`` lines; rc ``-`` = skipped (the reason follows)."""
    steps = []
    if not path.exists():
        return steps
    for line in path.read_text().splitlines():
        name, rc, secs, limit, *why = line.split("\t") + [""]
        if rc == "-":
            status = f"skipped ({why[0]})" if why[0] else "skipped"
        elif rc == "0":
            status = "ok"
        elif rc in ("124", "137"):
            status = f"TIMEOUT after {limit} s"
        else:
            status = f"FAILED (exit {rc})"
        steps.append({"name": name, "rc": rc, "seconds": float(secs or 0), "limit": limit, "status": status})
    return steps


def read_smi(path: Path) -> dict[str, list[tuple[float, float, float]]]:
    """nvidia-smi CSV (timestamp, uuid, utilization.gpu, memory.used) → per GPU uuid: (epoch, %, MiB)."""
    gpus: dict[str, list[tuple[float, float, float]]] = {}
    if not path.exists():
        return gpus
    with open(path, newline="") as f:
        for row in csv.reader(f, skipinitialspace=True):
            try:
                ts = datetime.datetime.strptime(row[0].strip(), TS_FORMAT).timestamp()  # local time, as time.time()
                util = float(row[2].replace("%", ""))
                mem = float(row[3].replace("MiB", ""))
            except (ValueError, IndexError):
                continue  # the header, [N/A], a line cut by the kill
            gpus.setdefault(row[1].strip(), []).append((ts, util, mem))
    return gpus


def busy_during(samples: list[tuple[float, float, float]], windows: list[list[float]]) -> Optional[dict]:
    """Mean GPU utilisation over the samples inside the wall-clock windows (None without samples)."""
    inside = [s for s in samples if any(a <= s[0] <= b for a, b in windows)]
    if not inside:
        return None
    return {"mean_util": statistics.fmean(s[1] for s in inside), "samples": len(inside),
            "max_mem_mib": max(s[2] for s in inside)}


def pick_gpu(gpus: dict, uuid: Optional[str]) -> list:
    """The benchmark's GPU: by UUID when known, else the one with the most memory in use."""
    if uuid and uuid in gpus:
        return gpus[uuid]
    return max(gpus.values(), key=lambda s: max(m for _, _, m in s), default=[])


def goal(name: str, value: Optional[float], target: str, met: Optional[bool], real: bool, fmt: str,
         note: str = "") -> dict:
    """One goal row; ``real`` is false on a CPU dry run (the verdict is then only shown as 'would be')."""
    if value is None or met is None:
        verdict = "FAIL (no data)" if real else "no data"
    else:
        verdict = ("PASS" if met else "FAIL") if real else f"dry run (would be {'PASS' if met else 'FAIL'})"
    return {"goal": name, "value": None if value is None else fmt.format(value), "target": target,
            "met": met, "verdict": verdict, "note": note}


def evaluate(out: Path, device: str, quick: bool) -> dict:
    real = device.startswith("cuda") and not quick
    cam, cam16, ex = (load_json(out / n) for n in ("cam_fp32.json", "cam_bf16.json", "explain.json"))
    tp = (ex or {}).get("throughput") or {}
    goals, info = [], []
    r = cam.get("ratio_a") if cam else None
    goals.append(goal("5 gradient CAMs / plain forward (fp32)", r, f"<= {GOAL_CAM}",
                      None if r is None else r <= GOAL_CAM, real, "{:.2f}",
                      f"@ {cam['grad_layer']}, tiles {'x'.join(map(str, cam['tiles']))}" if cam else ""))
    r16 = cam16.get("ratio_a") if cam16 else None
    goals.append(goal("5 gradient CAMs / plain forward (autocast bf16)", r16, f"<= {GOAL_CAM}",
                      None if r16 is None else r16 <= GOAL_CAM, real, "{:.2f}", "forward under the same autocast"))
    ratio = tp.get("ratio")
    goals.append(goal("explain x5 / inference throughput", ratio, f">= {GOAL_EXPLAIN:.0%}",
                      None if ratio is None else ratio >= GOAL_EXPLAIN, real, "{:.0%}",
                      f"{tp['explain5_mp_s']:.3g} vs {tp['inference_mp_s']:.3g} MP/s" if tp else ""))
    smi = read_smi(out / "nvidia_smi.csv")
    windows = tp.get("windows") or {}
    samples = pick_gpu(smi, tp.get("gpu_uuid"))
    busy = busy_during(samples, windows.get("explain5", [])) if samples else None
    if device.startswith("cuda"):
        goals.append(goal("GPU busy during explain x5", busy and busy["mean_util"], f">= {GOAL_BUSY:.0f} %",
                          None if busy is None else busy["mean_util"] >= GOAL_BUSY, real, "{:.0f} %",
                          f"mean of {busy['samples']} nvidia-smi samples (200 ms)" if busy else ""))
    else:
        goals.append({"goal": "GPU busy during explain x5", "value": None, "target": f">= {GOAL_BUSY:.0f} %",
                      "met": None, "verdict": "skipped (no GPU: nvidia-smi not run)", "note": ""})
    if tp:
        keeps_up = tp["read_mp_s"] >= tp["inference_mp_s"]
        waits = sum(tp["read_wait_s"]["explain5"]) / max(sum(tp["runs_s"]["explain5"]), 1e-9)
        info.append(("reader alone (read, pad, batch, pin)", f"{tp['read_mp_s']:.3g} MP/s",
                     "keeps up with inference" if keeps_up else "SLOWER than inference: the reader limits the GPU"))
        info.append(("explain x5 waited on the reader", f"{waits:.0%} of its time", ""))
        for key in ("e2e_gradcam_mp_s", "e2e_explain5_mp_s"):
            if key in tp:
                info.append((key.replace("_mp_s", "") + " (COGs written)", f"{tp[key]:.3g} MP/s", ""))
        info.append(("explain run", f"{tp['scene']} scene, tile {tp['tile']}, batch {tp['batch_size']}, "
                     f"{tp['model']}", tp["device"]))
    for key, label in (("inference", "GPU busy during inference"), ("e2e_explain5", "GPU busy during e2e explain x5")):
        b = busy_during(samples, windows.get(key, [])) if samples else None
        if b:
            info.append((label, f"{b['mean_util']:.0f} %", f"max {b['max_mem_mib']:.0f} MiB in use"))
    steps = read_steps(out / "steps.tsv")
    failed = [s["name"] for s in steps if not (s["status"] == "ok" or s["status"].startswith("skipped"))]
    return {"device": device, "quick": quick, "measured": real, "commit": git_commit(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "goals": goals,
            "info": [dict(zip(("what", "value", "note"), i)) for i in info], "steps": steps,
            "failed_steps": failed, "all_steps_ok": not failed,
            "all_goals_met": real and all(g["met"] for g in goals)}


def git_commit() -> str:
    """The checked-out commit (and whether the tree has local changes), for the record."""
    try:
        root = Path(__file__).resolve().parents[1]
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (rev + (" (with local changes)" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def to_markdown(s: dict) -> str:
    head = "GPU check" if s["measured"] else f"GPU check: dry run on {s['device']} (goals not meaningful)"
    if s.get("error"):
        head = "GPU check: INCOMPLETE (the summary could not read the results; see the logs)"
    lines = [f"# {head}", "", f"{s['date']}, commit {s['commit']}", "", "| goal | value | target | verdict | note |", "|---|---|---|---|---|"]
    lines += [f"| {g['goal']} | {g['value'] or '-'} | {g['target']} | **{g['verdict']}** | {g['note']} |"
              for g in s["goals"]]
    if s["info"]:
        lines += ["", "| also measured | value | note |", "|---|---|---|"]
        lines += [f"| {i['what']} | {i['value']} | {i['note']} |" for i in s["info"]]
    lines += ["", "| step | status | seconds | limit |", "|---|---|---|---|"]
    lines += [f"| {t['name']} | {t['status']} | {t['seconds']:.0f} | {t['limit']} |" for t in s["steps"]]
    lines += ["", f"failed steps: {', '.join(s['failed_steps']) or 'none'}; "
              f"all goals met: {'yes' if s['all_goals_met'] else 'no'}", ""]
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    try:
        s = evaluate(args.outdir, args.device, args.quick)
    except Exception as exc:  # unexpected step output: still say which steps ran and what broke here
        steps = read_steps(args.outdir / "steps.tsv")
        s = {"device": args.device, "quick": args.quick, "measured": False, "commit": git_commit(), "error": True,
             "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "goals": [], "info": [{"what": "summary error", "value": type(exc).__name__, "note": str(exc)[:200]}],
             "steps": steps, "failed_steps": [t["name"] for t in steps if not (t["status"] == "ok" or
                                                                               t["status"].startswith("skipped"))]
             + ["summary"],
             "all_steps_ok": False, "all_goals_met": False}
    md = to_markdown(s)
    (args.outdir / "summary.json").write_text(json.dumps(s, indent=1))
    (args.outdir / "summary.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

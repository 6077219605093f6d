"""Scenes per hour with 1 and W workers, and what Ray costs on one worker.

Configurations, each run ``--repeats`` times, interleaved (the machine is shared: medians are reported):

- ``local``: this process, no workers (torch threads pinned to ``--threads``);
- ``processes×1`` / ``processes×W``: worker processes (``--workers``, or ``--devices`` on GPUs);
- ``ray×1`` / ``ray×W``: Ray actors on a private local cluster (``--ray local``), if Ray is installed.

Throughput is the steady state: scenes ÷ (time from "every worker has loaded the model" to "last
scene done"); start-up (spawning workers, importing torch, loading the model) is reported apart.
The scenes are synthetic (``segxai synth``), generated once and cached; outputs go to a temp folder.

CPU (this machine): ``uv run python benchmarks/bench_scale.py --workers 2 --scenes 8 --size 512``
A multi-GPU box: ``uv run python benchmarks/bench_scale.py --device cuda --workers 8 --scenes 64 --size 4096``
(``--workers`` then counts GPUs: ``cuda:0 … cuda:7``; add ``--methods gradcam,hirescam`` for heavier scenes).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE = Path(os.environ.get("SEGXAI_BENCH_CACHE", "/tmp/segxai_bench"))


def scenes(n: int, size: int) -> list:
    from segxai_cli.raster.source import RasterSource
    from segxai_cli.synth import write_scenes

    folder = CACHE / f"scale_{n}x{size}"
    if not folder.is_dir() or len(list(folder.glob("scene_*[0-9].tif"))) < n:
        shutil.rmtree(folder, ignore_errors=True)
        list(write_scenes(folder, n, size, size, seed=3))
    return [RasterSource.of(p) for p in sorted(folder.glob("scene_*.tif")) if not p.stem.endswith("_mask")][:n]


def slots(args, n: int):
    from segxai_cli.workers.pool import Slot

    if args.device == "cuda":
        return [Slot(f"cuda:{i}", args.threads) for i in range(n)]
    return [Slot("cpu", args.threads, cpus=args.threads) for _ in range(n)]


def cpu_seconds(pids) -> float:
    """User + system CPU time of these processes so far (/proc; this machine only)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


class Clock:
    """Wraps a pool: when every worker is ready, and the CPU time its workers spent from then on
    (a measure the other jobs on a shared machine do not inflate as much as wall-clock time)."""

    def __init__(self, pool) -> None:
        self.pool, self.ready, self.cpu = pool, None, 0.0
        start, close = pool.start, pool.close

        def timed(*a, **k):
            infos = start(*a, **k)
            self.ready = time.perf_counter()
            self.cpu = -cpu_seconds(self.pids())
            return infos

        def closing():
            self.cpu += cpu_seconds(self.pids())
            close()

        pool.start, pool.close = timed, closing

    def pids(self) -> list[int]:
        if hasattr(self.pool, "procs"):
            return [p.pid for p in self.pool.procs if p is not None]
        return [w["pid"] for w in getattr(self.pool, "placement", {}).values()]


def run_once(kind: str, n: int, args, inputs: list) -> dict:
    import torch

    from segxai_cli.explain.executors.base import RunPlan
    from segxai_cli.explain.executors.pool import PoolExecutor
    from segxai_cli.explain.options import resolve_options

    opts = resolve_options(methods=args.methods, device=args.device)
    out = Path(tempfile.mkdtemp(dir=CACHE, prefix="out_"))
    t0 = time.perf_counter()
    try:
        if kind == "local":
            torch.set_num_threads(args.threads)
            plan = RunPlan(args.model, opts, out)
            explainer = plan.explainer(None, "cuda:0" if args.device == "cuda" else "cpu")
            ready, cpu0 = time.perf_counter(), time.process_time()
            results = [plan.scene(explainer, s, (i, len(inputs))) for i, s in enumerate(inputs, 1)]
            cpu = time.process_time() - cpu0
        else:
            clocks = []

            def make_pool():
                if kind == "ray":
                    from segxai_cli.workers.ray import RayPool

                    pool = RayPool(slots(args, n))
                else:
                    from segxai_cli.workers.processes import ProcessPool

                    pool = ProcessPool(slots(args, n))
                clocks.append(Clock(pool))
                return pool

            results = list(PoolExecutor(make_pool).run(RunPlan(args.model, opts, out), inputs))
            ready, cpu = clocks[0].ready, clocks[0].cpu
        end = time.perf_counter()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    bad = [r.error for r in results if r.status != "done"]
    if bad:
        raise SystemExit(f"{kind}x{n}: {bad[0]}")
    steady = end - ready
    return {"config": f"{kind}x{n}", "startup_s": ready - t0, "steady_s": steady,
            "scenes_per_hour": len(inputs) / steady * 3600, "worker_cpu_s_per_scene": cpu / len(inputs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--size", type=int, default=512, help="scene width and height (px)")
    ap.add_argument("--workers", type=int, default=2, help="W: CPU workers, or GPUs with --device cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--methods", default="gradcam")
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled sample model)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    inputs = scenes(args.scenes, args.size)
    import importlib.util

    kinds = [("local", 1), ("processes", 1), ("processes", args.workers)]
    if not args.no_ray and importlib.util.find_spec("ray"):
        from segxai_cli.workers.ray import start_local

        start_local(num_cpus=os.cpu_count(), num_gpus=args.workers if args.device == "cuda" else None)
        kinds += [("ray", 1), ("ray", args.workers)]
    runs: dict[str, list[dict]] = {}
    for rep in range(args.repeats):
        for kind, n in kinds:
            r = run_once(kind, n, args, inputs)
            runs.setdefault(r["config"], []).append(r)
            print(json.dumps({"repeat": rep + 1, **r}), flush=True)
    keys = ("startup_s", "steady_s", "scenes_per_hour", "worker_cpu_s_per_scene")
    med = {c: {k: statistics.median(x[k] for x in rs) for k in keys} for c, rs in runs.items()}
    print(f"\n{args.scenes} scenes {args.size}x{args.size}, {args.methods}, {args.device}, {args.threads} thread(s) "
          f"per worker, medians of {args.repeats}; load average now {os.getloadavg()[0]:.1f}")
    print("| config | scenes/hour | steady s | start-up s | worker CPU s/scene |\n|---|---|---|---|---|")
    for c, m in med.items():
        print(f"| {c} | {m['scenes_per_hour']:.0f} | {m['steady_s']:.1f} | {m['startup_s']:.1f} "
              f"| {m['worker_cpu_s_per_scene']:.2f} |")
    w = args.workers
    base = med["processes" + "x1"]["scenes_per_hour"]
    print(f"\nspeed-up processes x{w} / x1: {med[f'processesx{w}']['scenes_per_hour'] / base:.2f}")
    print(f"speed-up processes x{w} / local: {med[f'processesx{w}']['scenes_per_hour'] / med['localx1']['scenes_per_hour']:.2f}")
    if "rayx1" in med:
        print(f"speed-up ray x{w} / ray x1: {med[f'rayx{w}']['scenes_per_hour'] / med['rayx1']['scenes_per_hour']:.2f}")
        print(f"Ray overhead on one worker (steady time ray x1 / local - 1): "
              f"{100 * (med['rayx1']['steady_s'] / med['localx1']['steady_s'] - 1):+.1f} %")
        print(f"processes overhead on one worker (x1 / local - 1): "
              f"{100 * (med['processesx1']['steady_s'] / med['localx1']['steady_s'] - 1):+.1f} %")


if __name__ == "__main__":
    main()

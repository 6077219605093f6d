"""Scene-scale throughput of ``segxai explain`` and its peak memory.

1. Throughput on a generated scene (cached in /tmp/segxai_bench): plain inference through the same
   tiling pipeline (``methods=[]``: read → model → blend/stitch → strips on the host) against
   explaining with the five gradient methods (gradcam, gradcam++, xgradcam, hirescam, layercam) —
   warm-up first, then alternating runs, median megapixels/s and the ratio. Plus one end-to-end
   ``explain_scene`` (default gradcam, COGs written) for the full cost with compression.
2. Peak RSS of a whole ``explain_scene`` run in a fresh subprocess
   (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``), for several scene sizes: the peak must not
   grow with the scene (goal for 10 000 x 10 000 on CPU: <= 2 GB).

Model: the bundled sample model when it loads, else an untrained smp U-Net (``--arch``/``--encoder``,
default mobilenet_v2; ``encoder_weights=None``) — speed does not depend on the weights.

    uv run python benchmarks/bench_explain.py --size 1024 --rss-sizes 2048,10000
    uv run python benchmarks/bench_explain.py --device cuda --size 4096 --batch-size 32 --autocast bf16
    uv run python benchmarks/bench_explain.py --device cuda --size 8192 --batch-size 32 --end-to-end \
        --to-host --json out/explain.json      # as benchmarks/gpu_check.sh runs it

``--json`` also records the wall-clock (epoch) windows of the timed runs, so GPU utilisation sampled
alongside (``nvidia-smi -lms 200``) can be matched to the explain runs, and ``read_mp_s``: the reader
thread alone over the same grid (read, pad, batch, pin), which must outrun the compute for the GPU
to stay busy. ``--quick`` shrinks everything to a seconds-long dry run (CI).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segxai_cli.device import resolve_device  # noqa: E402
from segxai_cli.model.checkpoint import load_checkpoint
from segxai_cli.model.families import build_model
from segxai_cli.model.info import ModelInfo  # noqa: E402
from segxai_cli.raster.stats import BandStats  # noqa: E402

CACHE = Path(os.environ.get("SEGXAI_BENCH_CACHE", "/tmp/segxai_bench"))
FIVE = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"]


def scene(size: int) -> Path:
    """A synthetic size x size scene, generated once (window by window) and cached."""
    from segxai_cli.synth import write_scene

    CACHE.mkdir(parents=True, exist_ok=True)
    img = CACHE / f"scene_{size}.tif"
    if not img.exists():
        t = time.perf_counter()
        write_scene(img, CACHE / f"scene_{size}_mask.tif", size, size, seed=7, block=1024)
        print(f"# generated {img} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return img


def get_model(args, device):
    if args.model != "synthetic":
        try:
            model, info = load_checkpoint(None if args.model == "bundled" else args.model, device=device)
            return model, info, f"{Path(info.path).name} ({info.arch}/{info.encoder})"
        except Exception as exc:  # bundled model not there yet / not loadable
            print(f"# model {args.model!r} not usable ({str(exc)[:100]}); using an untrained {args.arch}/{args.encoder}",
                  file=sys.stderr)
    kw = {}
    if args.encoder == "tiny":  # the tests' tiny U-Net (for quick memory runs)
        enc, kw = "resnet18", {"encoder_depth": 3, "decoder_channels": [32, 16, 8]}
    else:
        enc = args.encoder
    info = ModelInfo(arch=args.arch, encoder=enc, in_channels=3, classes=2, model_kwargs=kw,
                     class_names=["background", "building"], band_stats=BandStats((120.0,) * 3, (50.0,) * 3),
                     source_dtype="uint8", tile_size=args.tile or 256)
    torch.manual_seed(0)
    return build_model(info).to(device).eval(), info, f"untrained {args.arch}/{args.encoder}"


def throughput(args) -> dict:
    from segxai_cli.tiling.grid import overlap_from_fraction
    from segxai_cli.explain.pipeline import PipelineConfig, run_scene

    device = resolve_device(args.device)
    model, info, label = get_model(args, device)
    path = scene(args.size)
    tile = args.tile or info.tile_size
    bs = args.batch_size or (16 if device.type == "cuda" else 4)

    def cfg(methods):
        return PipelineConfig(tile=tile, overlap=overlap_from_fraction(tile, args.overlap), bidx=[1, 2, 3],
                              stats=info.band_stats, methods=methods, layers=[args.layer], target_class=1,
                              batch_size=bs, device=device, autocast=args.autocast, n_classes=info.classes)

    sink = (lambda r, s, p: None) if args.to_host else None
    run_scene(path, model, cfg([]), sink=sink)  # warm-up
    run_scene(path, model, cfg(FIVE[:1]), sink=sink)
    mp = args.size * args.size / 1e6
    times: dict = {"inference": [], "explain5": []}
    windows: dict = {"inference": [], "explain5": []}  # epoch seconds, to match GPU utilisation samples
    read_wait: dict = {"inference": [], "explain5": []}
    for _ in range(args.repeats):
        for key, methods in (("inference", []), ("explain5", FIVE)):
            t0 = time.time()
            st = run_scene(path, model, cfg(methods), sink=sink)
            windows[key].append([t0, time.time()])
            times[key].append(st.seconds)
            read_wait[key].append(st.read_wait_seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    read_s = [read_only(path, cfg([]), args.size) for _ in range(args.repeats)]
    res = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({os.cpu_count()} cores)",
        "model": label, "scene": f"{args.size}x{args.size}", "tile": tile, "overlap": args.overlap,
        "batch_size": bs, "layer": args.layer, "autocast": args.autocast,
        "inference_mp_s": mp / med["inference"], "explain5_mp_s": mp / med["explain5"],
        "ratio": med["inference"] / med["explain5"], "runs_s": times, "windows": windows,
        "read_wait_s": read_wait, "read_mp_s": mp / statistics.median(read_s), "read_runs_s": read_s,
        "gpu_uuid": gpu_uuid(device),
    }
    if args.json:  # the throughput figures survive a failure or timeout in the end-to-end runs
        save_json(args.json, {"throughput": res, "complete": False})
    if args.end_to_end:
        from segxai_cli.explain import explain_scene

        with tempfile.TemporaryDirectory(dir=CACHE) as out:
            for methods, key in ((["gradcam"], "e2e_gradcam_mp_s"), (FIVE, "e2e_explain5_mp_s")):
                t0 = time.time()
                r = explain_scene(path, out, model=(model, info), methods=methods, tile_size=tile, batch_size=bs,
                                  device=device, autocast=args.autocast, layer=args.layer, overwrite=True)
                windows[key.removesuffix("_mp_s")] = [[t0, time.time()]]
                res[key] = mp / r.seconds
    return res


def read_only(path: Path, cfg, size: int) -> float:
    """Seconds for the pipeline's reader thread alone to deliver every batch of the scene (no compute)."""
    import queue
    import threading

    from segxai_cli.explain.reading import END, Reader
    from segxai_cli.raster.source import RasterSource
    from segxai_cli.tiling.grid import TileGrid

    q: queue.Queue = queue.Queue(maxsize=max(1, cfg.prefetch))
    stop = threading.Event()
    grid = TileGrid(size, size, cfg.tile, cfg.overlap)
    reader = Reader(RasterSource.of(path), grid, cfg.bidx, cfg.batch_size, None, q, stop, pin=cfg.device.type == "cuda")
    t = time.perf_counter()
    reader.start()
    while (item := q.get()) is not END:
        if isinstance(item, BaseException):
            raise item
    seconds = time.perf_counter() - t
    reader.join()
    return seconds


def gpu_uuid(device: torch.device) -> str | None:
    """The GPU's UUID as nvidia-smi prints it (``GPU-…``), to pick its rows from the utilisation log."""
    if device.type != "cuda":
        return None
    try:
        u = str(torch.cuda.get_device_properties(device).uuid)
    except Exception:
        return None
    return u if u.startswith("GPU-") else f"GPU-{u}"


def rss_child(args) -> None:
    """Runs in a fresh process: one whole explain_scene, prints its timing as JSON."""
    from segxai_cli.explain import explain_scene

    device = resolve_device(args.device)
    model, info, label = get_model(args, device)
    path = scene(args.size)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=CACHE) as out:
        r = explain_scene(path, out, model=(model, info), methods=args.methods.split(","),
                          tile_size=args.tile or info.tile_size, batch_size=args.batch_size, device=device,
                          layer=args.layer)
    print(json.dumps({"seconds": time.perf_counter() - t, "tiles": r.stats.tiles, "model": label,
                      "self_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def peak_rss(args, size: int, encoder: str) -> dict:
    scene(size)  # generate outside the measured process
    cmd = [sys.executable, __file__, "--rss-child", "--size", str(size), "--device", args.device,
           "--methods", args.rss_methods, "--layer", args.layer, "--model", args.model, "--arch", args.arch,
           "--encoder", encoder, "--batch-size", str(args.batch_size or 4)]
    if args.tile:
        cmd += ["--tile", str(args.tile)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN is the max over finished children: valid as long as this child is the largest so far
    return {"scene": f"{size}x{size}", "methods": args.rss_methods,
            "peak_rss_mb": max(rss, before) / 1024, "child_self_mb": child["self_maxrss_mb"],
            "seconds": child["seconds"], "tiles": child["tiles"], "model": child["model"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024, help="throughput scene size (px)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="bundled", help="bundled | synthetic | path to a checkpoint")
    ap.add_argument("--arch", default="Unet")
    ap.add_argument("--encoder", default="mobilenet_v2", help="encoder of the untrained fallback model ('tiny' = tests' model)")
    ap.add_argument("--layer", default="decoder.last")
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--autocast", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--to-host", action="store_true", help="also move finished strips to the host (a no-op sink)")
    ap.add_argument("--end-to-end", action="store_true", help="also time explain_scene with COG writing")
    ap.add_argument("--rss-sizes", default="", help="comma list of scene sizes for peak-RSS runs, e.g. 2048,10000")
    ap.add_argument("--rss-encoder", default=None, help="encoder for the RSS runs (default: --encoder)")
    ap.add_argument("--rss-methods", default="gradcam")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="dry run: scene <= 128 px, tile 64, batch <= 4, 1 repeat, no RSS runs (seconds on a CPU)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--prepare", action="store_true", help="only generate (cache) the scene and exit")
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--methods", default="gradcam", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.size, args.tile, args.repeats, args.rss_sizes = min(args.size, 128), 64, 1, ""
        args.batch_size = min(args.batch_size or 4, 4)
    if args.prepare:
        print(scene(args.size))
        return
    if args.rss_child:
        rss_child(args)
        return
    results: dict = {"date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    if not args.skip_throughput:
        r = throughput(args)
        results["throughput"] = r
        print(f"{r['device']} | {r['model']} | scene {r['scene']} tile {r['tile']} batch {r['batch_size']}")
        print(f"  inference  {r['inference_mp_s']:.3f} MP/s")
        print(f"  explain x5 {r['explain5_mp_s']:.3f} MP/s  ({100 * r['ratio']:.0f} % of inference)")
        print(f"  reader alone {r['read_mp_s']:.3f} MP/s")
        for k in ("e2e_gradcam_mp_s", "e2e_explain5_mp_s"):
            if k in r:
                print(f"  {k} {r[k]:.3f} MP/s")
    results["rss"] = []
    for size in [int(s) for s in args.rss_sizes.split(",") if s]:
        r = peak_rss(args, size, args.rss_encoder or args.encoder)
        results["rss"].append(r)
        print(f"  peak RSS {r['scene']} ({r['model']}, {r['methods']}): {r['peak_rss_mb']:.0f} MB "
              f"in {r['seconds']:.0f} s, {r['tiles']} tiles")
    print(json.dumps(results, indent=1, default=str))
    if args.json:
        save_json(args.json, {**results, "complete": True})


def save_json(path: str, data: dict) -> None:
    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


if __name__ == "__main__":
    main()

"""Explain a COG served over HTTP (loopback) against the same file read locally, in one run.

The scene (a synthetic ``--size`` square, cached in /tmp/segxai_bench) is converted to a COG and served
by the tests' Range-capable HTTP server (tests/servers/http_range.py) in a **separate process**, so
the server does not compete with the explain for the GIL. After a warm-up of each, local and HTTP
runs alternate (``--repeats`` each; every HTTP run uses its own URL, ``?run=N``, so that GDAL's
per-process cache of downloaded ranges does not serve it: each run reads the scene over the network) and the median end-to-end
``explain_scene`` times (COGs written) are compared: goal HTTP ≥ 80 % of local throughput. The number
and volume of HTTP requests are reported from the server's log.

    uv run python benchmarks/bench_remote.py --size 1024 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path(os.environ.get("SEGXAI_BENCH_CACHE", "/tmp/segxai_bench"))

SERVER = r"""
import sys, time, json
sys.path.insert(0, sys.argv[1])
from servers.http_range import RangeServer
srv = RangeServer(sys.argv[2])
srv.thread.start()
print(srv.url, flush=True)
for line in sys.stdin:  # 'stats' -> request count and bytes asked for; EOF -> stop
    n = len(srv.requests)
    asked = 0
    for _, _, rng in srv.requests:
        for part in rng[len("bytes="):].split(",") if rng else []:
            a, _, b = part.partition("-")
            asked += int(b) - int(a) + 1 if a and b else 0
    srv.requests.clear()
    print(json.dumps({"requests": n, "bytes": asked}), flush=True)
srv.shutdown()
"""


def cog(size: int) -> Path:
    import rasterio.shutil

    from segxai_cli.synth import write_scene

    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"scene_{size}_cog.tif"
    if not out.exists():
        src = CACHE / f"scene_{size}.tif"
        if not src.exists():
            write_scene(src, CACHE / f"scene_{size}_mask.tif", size, size, seed=7, block=1024)
        rasterio.shutil.copy(src, out, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--method", default="gradcam")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from segxai_cli.device import resolve_device
    from segxai_cli.explain import explain_scene
    from segxai_cli.model.checkpoint import load_checkpoint

    path = cog(args.size)
    device = resolve_device(args.device)
    model, info = load_checkpoint(None, device=device)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT / "tests"), str(path.parent)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip() + "/" + path.name
    mp = args.size * args.size / 1e6
    times: dict[str, list[float]] = {"local": [], "http": []}
    traffic = []
    try:
        with tempfile.TemporaryDirectory(dir=CACHE) as out:
            runs = iter(range(1_000_000))

            def run(where: str) -> float:
                t = time.perf_counter()
                r = explain_scene(str(path) if where == "local" else f"{url}?run={next(runs)}", out, model=(model, info),
                                  methods=[args.method], device=device, overwrite=True)
                assert r.status == "done", r.error
                return time.perf_counter() - t

            for where in ("local", "http"):  # warm-up
                run(where)
            server.stdin.write("stats\n")
            server.stdin.flush()
            server.stdout.readline()
            for _ in range(args.repeats):
                for where in ("local", "http"):
                    times[where].append(run(where))
                    if where == "http":
                        server.stdin.write("stats\n")
                        server.stdin.flush()
                        traffic.append(json.loads(server.stdout.readline()))
    finally:
        server.stdin.close()
        server.wait(timeout=30)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "device": str(device), "cpus": os.cpu_count(), "scene": f"{args.size}x{args.size} COG ({path.stat().st_size / 1e6:.1f} MB)",
        "model": f"{info.arch}/{info.encoder}", "tile": info.tile_size, "method": args.method,
        "local_mp_s": round(mp / med["local"], 4), "http_mp_s": round(mp / med["http"], 4),
        "http_over_local": round(med["local"] / med["http"], 3), "runs_s": times,
        "http_requests_per_run": [t["requests"] for t in traffic], "http_mb_per_run": [round(t["bytes"] / 1e6, 2) for t in traffic],
    }, indent=2))


if __name__ == "__main__":
    main()

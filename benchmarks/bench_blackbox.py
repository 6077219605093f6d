"""Cost of the model-agnostic methods (RISE, occlusion) next to Score-CAM, on the bundled model.

    uv run python benchmarks/bench_blackbox.py [--device cpu|cuda] [--size 256] [--batch 1]
                                               [--rise 250,1000] [--repeats 1]

Every method costs model forwards on perturbed tiles: Score-CAM one per channel of the layer
(``decoder.last``), RISE one per mask, occlusion one per patch position. The table gives the
seconds per map, maps/s, the forwards per map and the seconds per forward of each method, next to a
plain batched forward — so the figures can be scaled to any N, window or machine.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings

import torch

from segxai_cli.cam import EmptyRegionWarning, explain_batch
from segxai_cli.cam.methods.occlusion import positions
from segxai_cli.model.checkpoint import load_model
from segxai_cli.model.families import as_adapter


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_time(fn, device, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rise", default="250,1000", help="mask counts N to time")
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    net, info = load_model(None, device)
    x = torch.randn(args.batch, info.in_channels, args.size, args.size, device=device)
    adapter = as_adapter(net)
    warnings.simplefilter("ignore", EmptyRegionWarning)

    chunk = torch.randn(32, info.in_channels, args.size, args.size, device=device)
    with torch.no_grad():
        t_fwd = median_time(lambda: adapter(chunk), device, max(args.repeats, 2)) / 32
    k = _channels(net, x)
    n_occ = len(positions(args.size, args.window, args.stride)) ** 2
    rows = [("score-cam @ decoder.last", k, lambda: explain_batch(net, x, "decoder.last", ["scorecam"], target_class=1))]
    for n in (int(v) for v in args.rise.split(",")):
        rows.append((f"rise N={n}", n, lambda n=n: explain_batch(net, x, methods=["rise"], target_class=1, rise_masks=n)))
    rows.append((f"occlusion {args.window}/{args.stride}", n_occ,
                 lambda: explain_batch(net, x, methods=["occlusion"], target_class=1, occlusion_window=args.window,
                                       occlusion_stride=args.stride)))
    print(f"# {datetime.date.today()} {platform.node()} {device} torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}; bundled model {info.label}, {args.batch} tile(s) of {args.size} px")
    print(f"plain forward: {t_fwd * 1000:.1f} ms per tile (batches of 32)")
    print("| method | forwards per map | s per map | maps/s | ms per forward |")
    print("|---|---|---|---|---|")
    for m in ("scorecam", "rise", "occlusion"):  # warm-up of every code path at a tiny cost
        explain_batch(net, x, "decoder.last", [m], target_class=1, rise_masks=2, occlusion_window=args.size)
    for name, forwards, fn in rows:
        t = median_time(fn, device, args.repeats, warmup=False) / args.batch
        print(f"| {name} | {forwards} | {t:.2f} | {1 / t:.3f} | {t / forwards * 1000:.1f} |")


def _channels(net, x) -> int:
    from segxai_cli.model.layers import resolve_layer

    ref = resolve_layer(net, "decoder.last")
    out = {}
    h = ref.module.register_forward_hook(lambda m, i, o: out.setdefault("a", o))
    with torch.no_grad():
        net(x[:1])
    h.remove()
    return int(ref.select(out["a"]).shape[1])


if __name__ == "__main__":
    main()

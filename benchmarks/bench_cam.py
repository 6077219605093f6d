"""CAM engine vs plain inference and vs pytorch-grad-cam 1.5.x: same model, tiles, device, process.

    uv run python benchmarks/bench_cam.py [--device cpu|cuda] [--batch 4] [--size 256]
                                          [--encoder resnet34] [--classes 2] [--repeats 3]
                                          [--autocast bf16] [--quick] [--json out.json]
                                          [--only abcde] [--ablation-blocks 0,1,2,3,4]

``--only d`` runs just (d), Ablation-CAM at every decoder block (the reference's part takes minutes).

Each timing is the median of ``--repeats`` runs after one warm-up run (``--ref-repeats`` for the
reference, whose runs are long). Ratios are what to compare across machines; absolute times on a
shared CPU are noisy. With ``--autocast`` the plain forward that (a) divides by runs under the same
autocast, so the ratio compares like with like. ``--quick`` is a seconds-long dry run (1 x 64 x 64,
resnet18, one repeat) of every code path; ``--json`` writes the table and the raw timings for
``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time
import warnings
from typing import Callable

import numpy as np
import segmentation_models_pytorch as smp
import torch

from segxai_cli.cam import explain_batch, predict_region
from segxai_cli.cam.methods.eigencam import eigencam
from segxai_cli.device import autocast as autocast_ctx

GRAD5 = ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` runs after ``warmup`` runs."""
    return paired([fn], device, repeats, warmup)[0][0]


def paired(fns, device: torch.device, repeats: int, warmup: int = 1):
    """Run the functions interleaved (A B A B ...) so both see the same machine load.

    Returns, per function, (median wall seconds, median process CPU seconds). On a shared CPU the
    wall-clock ratio of interleaved runs is the fair comparison; CPU time is shown as a cross-check.
    The minimum wall time (least disturbed run) is kept in ``paired.last_min``.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    sync(device)
    wall = [[] for _ in fns]
    cpu = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t, c = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            wall[i].append(time.perf_counter() - t)
            cpu[i].append(time.process_time() - c)
    paired.last_min = [min(w) for w in wall]
    return [(statistics.median(w), statistics.median(c)) for w, c in zip(wall, cpu)]


class SegOutput(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def reference_runner(method_cls, net, layer_path, x, region, category, **attrs):
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    wrapped = SegOutput(net)
    layer = dict(net.named_modules())[layer_path]
    masks = [region[b].float().cpu().numpy() for b in range(len(x))]

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with method_cls(model=wrapped, target_layers=[layer]) as cam:
                for k, v in attrs.items():
                    setattr(cam, k, v)
                out = cam(input_tensor=x, targets=[SemanticSegmentationTarget(category, m) for m in masks])
        for p in net.parameters():
            p.grad = None
        return out

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--encoder", default="resnet34")
    ap.add_argument("--classes", type=int, default=2, choices=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-repeats", type=int, default=1, help="median over this many reference runs")
    ap.add_argument("--grad-layer", default="decoder.blocks.2", help="layer for (a) and (b)")
    ap.add_argument("--score-layer", default="decoder.blocks.4", help="few-channel layer for (c)")
    ap.add_argument("--ablation-blocks", default="0,1,2,3,4", help="decoder blocks N for (d), comma list")
    ap.add_argument("--ref-ablation-batch", type=int, default=None,
                    help="the reference AblationCAM's batch_size for (d) (default: its own, 32)")
    ap.add_argument("--only", default="abcde", help="which measures to run, e.g. 'd' (default: all)")
    ap.add_argument("--eigen-layer", default="decoder.blocks.4", help="full-resolution layer for (e)")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--autocast", default=None, help="bf16|fp16 for our engine (GPU)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--quick", action="store_true",
                    help="dry run: 1 x 64 x 64 tiles, resnet18, one repeat, one layer per measure")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.size, args.encoder, args.repeats, args.ref_repeats = 1, 64, "resnet18", 1, 1
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    torch.manual_seed(0)
    net = smp.Unet(args.encoder, encoder_weights=None, in_channels=3, classes=args.classes).eval().to(device)
    x = torch.randn(args.batch, 3, args.size, args.size, generator=torch.Generator().manual_seed(1)).to(device)
    cls = 1
    category = 0 if args.classes == 1 else cls
    with torch.no_grad():
        region = predict_region(net(x), cls)
    rows: list[tuple[str, str, str, str]] = []  # (what, value, goal, verdict)

    def forward():
        with torch.no_grad(), autocast_ctx(device, args.autocast):
            net(x)

    def ours5(layer):
        return lambda: explain_batch(net, x, layer, GRAD5, target_class=cls, autocast=args.autocast)

    # (a) our five gradient maps in one call vs the plain forward, interleaved, at several layers
    layers_a = [args.grad_layer] + [lay for lay in ["decoder.blocks.0", "decoder.blocks.4", "bottleneck"]
                                    if lay != args.grad_layer and not args.quick]
    t_fwd = t_ours5 = None
    goal_a = 1.2 if device.type == "cuda" else 1.5
    for i, layer in enumerate(layers_a if "a" in args.only else []):
        (tf, cf), (to, co) = paired([forward, ours5(layer)], device, args.repeats)
        mf, mo = paired.last_min
        print(f"forward {tf:.3f} s | ours 5 gradient CAMs @ {layer}: {to:.3f} s "
              f"(wall {to / tf:.2f}x, cpu {co / cf:.2f}x, min/min {mo / mf:.2f}x forward)", flush=True)
        extra = f"(cpu-time {co / cf:.2f}, min/min {mo / mf:.2f})"
        if i == 0:
            t_fwd, t_ours5 = tf, to
            rows.append((f"(a) ours 5 grad CAMs @ {layer} / forward", f"{to / tf:.2f}", f"<= {goal_a}",
                         ok(to / tf <= goal_a) + " " + extra))
        else:
            rows.append((f"    same @ {layer} / forward", f"{to / tf:.2f}", "(info)", extra))

    result = {"device": device_name(device), "autocast": args.autocast, "torch": torch.__version__,
              "tiles": [args.batch, 3, args.size, args.size], "encoder": args.encoder, "repeats": args.repeats,
              "grad_layer": args.grad_layer, "forward_s": t_fwd, "ours5_s": t_ours5, "ratio_a": t_ours5 / t_fwd if t_ours5 else None,
              "goal_a": goal_a}
    if args.json:  # (a) is kept even if a later measure fails
        write_json(args.json, {**result, "complete": False})

    if not args.skip_reference:
        from pytorch_grad_cam import AblationCAM, GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, ScoreCAM, XGradCAM

    if not args.skip_reference and "b" in args.only:
        # (b) reference: the same five, one after another
        refs = [reference_runner(c, net, args.grad_layer, x, region, category)
                for c in (GradCAM, GradCAMPlusPlus, XGradCAM, HiResCAM, LayerCAM)]
        (t_o, c_o), (t_ref5, c_ref5) = paired([ours5(args.grad_layer), lambda: [f() for f in refs]], device,
                                              args.ref_repeats)
        r = t_ref5 / t_o
        print(f"reference 5 gradient CAMs: {t_ref5:.3f} s (ours {t_o:.3f} s)", flush=True)
        rows.append((f"(b) reference 5 grad CAMs / ours @ {args.grad_layer}", f"{r:.1f}", ">= 8",
                     ok(r >= 8) + f" (cpu-time {c_ref5 / c_o:.1f})"))

    if not args.skip_reference and "c" in args.only:
        # (c) Score-CAM, same few-channel layer
        ref_s = reference_runner(ScoreCAM, net, args.score_layer, x, region, category, batch_size=16)
        (t_ours_s, c_ours_s), (t_ref_s, c_ref_s) = paired(
            [lambda: explain_batch(net, x, args.score_layer, ["scorecam"], target_class=cls,
                                   autocast=args.autocast), ref_s], device, args.ref_repeats, warmup=0)
        print(f"Score-CAM ours {t_ours_s:.3f} s, reference {t_ref_s:.3f} s", flush=True)
        rows.append((f"(c) Score-CAM reference / ours @ {args.score_layer}", f"{t_ref_s / t_ours_s:.2f}", "(report)",
                     f"(cpu-time {c_ref_s / c_ours_s:.2f})"))

    if not args.skip_reference and "d" in args.only:
        # (d) Ablation-CAM at every decoder block: reference at the block's conv2 (it fails on the
        # block; conv2 is the block's output), ours at the block
        blocks = [int(b) for b in args.ablation_blocks.split(",")]
        for j, n in enumerate(blocks[-1:] if args.quick else blocks):
            ref_kw = {} if args.ref_ablation_batch is None else {"batch_size": args.ref_ablation_batch}
            ref_a = reference_runner(AblationCAM, net, f"decoder.blocks.{n}.conv2", x, region, category, **ref_kw)
            ours_a = lambda n=n: explain_batch(net, x, f"decoder.blocks.{n}", ["ablationcam"],  # noqa: E731
                                               target_class=cls, autocast=args.autocast)
            ours_a()
            (t_ours_a, c_ours_a), (t_ref_a, c_ref_a) = paired([ours_a, ref_a], device, args.ref_repeats, warmup=0)
            r = t_ref_a / t_ours_a
            print(f"Ablation-CAM @ block {n}: ours {t_ours_a:.3f} s, reference {t_ref_a:.3f} s", flush=True)
            label = f"(d) Ablation-CAM ref @ decoder.blocks.{n}.conv2 / ours @ block" if j == 0 else \
                f"    same @ decoder.blocks.{n}"
            rows.append((label, f"{r:.1f}", ">= 10", ok(r >= 10) + f" (cpu-time {c_ref_a / c_ours_a:.1f}; "
                         f"ours {t_ours_a:.2f} s, ref {t_ref_a:.1f} s)"))
        rows.append(("    reference Ablation-CAM on the whole block", "TypeError", "", "(skip_connection= kwarg)"))

    if "e" in args.only:
        eigen_rows(args, net, x, cls, region, forward, device, rows)
    if t_fwd is None:
        t_fwd = timeit(forward, device, args.repeats)
    print_summary(args, device, t_fwd, rows)
    if args.json:
        write_json(args.json, {**result, "rows": [dict(zip(("measure", "value", "goal", "verdict"), r)) for r in rows],
                               "complete": True})
    return 0


def eigen_rows(args, net, x, cls, region, forward, device, rows) -> None:
    """(e) Eigen-CAM at a full-resolution decoder layer."""
    t_eig = timeit(lambda: explain_batch(net, x, args.eigen_layer, ["eigencam"], target_class=cls,
                                         autocast=args.autocast), device, args.repeats)
    acts = {}
    h = dict(net.named_modules())[args.eigen_layer].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    forward()
    h.remove()
    A = acts["a"]
    t_eig_only = timeit(lambda: eigencam(A, region), device, args.repeats)
    per_tile = t_eig_only / args.batch
    rows.append((f"(e) Eigen-CAM @ {args.eigen_layer} {tuple(A.shape[1:])}, PCA + sign / tile",
                 f"{per_tile:.4f} s", "< 1 s", ok(per_tile < 1)))
    rows.append(("    whole explain_batch call (incl. forward) / tile", f"{t_eig / args.batch:.3f} s", "(info)", ""))
    rows.append(("    reference EigenCAM there", "not run", "", "numpy SVD full_matrices: (h*w)^2, ~32 GiB"))


def print_summary(args, device, t_fwd, rows) -> None:
    print()
    print(f"segxai CAM benchmark  {datetime.date.today().isoformat()}")
    print(f"device: {device_name(device)}; torch {torch.__version__} (threads {torch.get_num_threads()}), "
          f"smp {smp.__version__}, grad-cam {grad_cam_version()}, numpy {np.__version__}, "
          f"python {platform.python_version()}")
    print(f"model: smp.Unet({args.encoder}, encoder_weights=None, 3 bands, {args.classes} class(es)); "
          f"tiles: {args.batch} x 3 x {args.size} x {args.size}; median of {args.repeats} "
          f"(reference: {args.ref_repeats}) after warm-up; plain forward {t_fwd:.3f} s")
    print("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    w = max(len(r[0]) for r in rows)
    print(f"\n{'measure':{w}}  {'value':>10}  {'goal':>8}  verdict")
    for what, val, goal, verdict in rows:
        print(f"{what:{w}}  {val:>10}  {goal:>8}  {verdict}")


def write_json(path: str, data: dict) -> None:
    import json
    from pathlib import Path

    tmp = Path(path).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def ok(flag: bool) -> str:
    return "met" if flag else "MISSED"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def grad_cam_version() -> str:
    try:
        from importlib.metadata import version

        return version("grad-cam")
    except Exception:
        return "not installed"


if __name__ == "__main__":
    raise SystemExit(main())

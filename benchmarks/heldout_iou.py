"""Building IoU of a segxai checkpoint on held-out synthetic scenes (seeds never used for training).

    uv run python benchmarks/heldout_iou.py [--model sample_tiles/segxai_buildings.pt] [--seeds 101,...,105] [--size 1024]

Each scene is generated in memory with :mod:`segxai_cli.synth` (the bundled model never saw these
seeds, see sample_tiles/MODEL.md), cut into tiles of the checkpoint's tile size with 50 % overlap
(the library's grid: last row/column snapped to the edge), normalised with the library's one tile
rule (:func:`segxai_cli.tiling.tiles.normalize`), run through the model's adapter (full-resolution
logits, as in explain/evaluate), class probabilities averaged where tiles overlap, and compared with
the scene's mask: IoU of the building class = |pred ∩ truth| / |pred ∪ truth|. Prints one line per
scene and the IoU pooled over all scenes (intersections and unions summed).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from segxai_cli.model.checkpoint import load_checkpoint, require_band_stats
from segxai_cli.model.families import as_adapter
from segxai_cli.synth import generate_scene
from segxai_cli.tiling.grid import axis_starts
from segxai_cli.tiling.tiles import normalize


@torch.no_grad()
def predict(model, info, image: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Building mask (H, W) bool for a whole in-memory scene (bands, H, W) at least one tile in size."""
    adapter, stats, tile = as_adapter(model), require_band_stats(info), info.tile_size
    _, h, w = image.shape
    x = torch.from_numpy(np.ascontiguousarray(image[[b - 1 for b in info.bands]]))
    acc = np.zeros((max(info.classes, 1), h, w), np.float32)
    cnt = np.zeros((h, w), np.float32)
    wins = [(r, c) for r in axis_starts(h, tile, tile // 2) for c in axis_starts(w, tile, tile // 2)]
    for i in range(0, len(wins), batch_size):
        chunk = wins[i : i + batch_size]
        xb = torch.stack([x[:, r : r + tile, c : c + tile] for r, c in chunk])
        valid = torch.ones((len(chunk), tile, tile), dtype=torch.bool)  # generated scenes have no nodata
        logits = adapter(normalize(xb, valid, stats))
        prob = torch.sigmoid(logits) if info.classes == 1 else torch.softmax(logits, 1)
        prob = prob.numpy()
        for (r, c), p in zip(chunk, prob):
            acc[:, r : r + tile, c : c + tile] += p
            cnt[r : r + tile, c : c + tile] += 1
    acc /= cnt
    if info.classes == 1:
        return acc[0] > 0.5
    return acc.argmax(0) == info.target_class


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the bundled model)")
    ap.add_argument("--seeds", default="101,102,103,104,105", help="comma-separated scene seeds (never the training seeds of the model: 1-60 for the bundled one)")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, info = load_checkpoint(args.model)
    inter = union = 0
    t0 = time.perf_counter()
    for seed in [int(s) for s in args.seeds.split(",")]:
        image, mask, _ = generate_scene(args.size, args.size, seed)
        pred = predict(model, info, image)
        truth = mask == 1
        i, u = int((pred & truth).sum()), int((pred | truth).sum())
        inter += i
        union += u
        print(f"seed {seed}: {args.size}x{args.size}, building IoU {i / max(u, 1):.4f} "
              f"(building cover {truth.mean():.3f}, predicted {pred.mean():.3f})")
    print(f"held-out building IoU: {inter / max(union, 1):.4f}  (model {info.path}, {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

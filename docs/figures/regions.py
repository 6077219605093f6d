"""The picture of docs/explain.md "What a region means": scene, box, unclipped and clipped maps.

    uv run python docs/figures/regions.py        # writes docs/img/regions.png (about 30 s on a CPU)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402

from segxai_cli.explain import explain_scene  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SCENE = ROOT / "sample_tiles" / "scene_01.tif"
BBOX = (601100.0, 5339800.0, 601160.0, 5339860.0)  # the README's example box


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        maps = {}
        for clip in (False, True):
            r = explain_scene(SCENE, Path(tmp) / str(clip), bbox=BBOX, clip_to_region=clip, device="cpu")
            with rasterio.open(r.saliency) as src:
                maps[clip] = src.read(1)
        with rasterio.open(SCENE) as src:
            rgb = np.moveaxis(src.read([1, 2, 3]), 0, -1)
            inv = ~src.transform
        (c0, r0), (c1, r1) = inv * (BBOX[0], BBOX[3]), inv * (BBOX[2], BBOX[1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6))
    panels = [("scene and --bbox", None), ("--no-clip-to-region: what in each window\nsupports the box's score", maps[False]),
              ("default (clipped): zero outside the box,\nnormalised within it", maps[True])]
    for ax, (title, m) in zip(axes, panels):
        ax.imshow(rgb)
        if m is not None:
            ax.imshow(np.ma.masked_where(~(m > 0), m), cmap="turbo", vmin=0, vmax=1, alpha=0.75)
        ax.add_patch(plt.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, ec="white", lw=1.5, ls="--"))
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle("segxai explain sample_tiles/scene_01.tif --bbox 601100,5339800,601160,5339860  (Seg-Grad-CAM, building)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    out = ROOT / "docs" / "img" / "regions.png"
    fig.savefig(out, dpi=80)
    print(out)


if __name__ == "__main__":
    main()

"""``<stem>_saliency.tif``: float32, one band per method (and layer), NaN = nodata, its ``.qml`` (band 1)
and ``<stem>_saliency_<band>.qml`` per band.

With ``--normalize scene`` the raw blended maps are rescaled once per scene (per band, min-max over
the valid pixels) while the COG is made, so they are never rewritten.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.files import remove_stale_sidecars
from segxai_cli.raster.style import write_band_styles, write_heatmap_style

if TYPE_CHECKING:
    import numpy as np

    from segxai_cli.explain.pipeline import SceneStats

SALIENCY_NODATA = float("nan")


class SaliencyOutput(SceneOutput):
    kind = "saliency"

    @classmethod
    def files(cls, outdir: Path, stem: str) -> dict[str, Path]:
        return {"saliency": outdir / f"{stem}_saliency.tif", "saliency_style": outdir / f"{stem}_saliency.qml"}

    def __init__(self, scene: SceneContext) -> None:
        from segxai_cli.raster.writer import StreamingWriter

        super().__init__(scene)
        opts = self.opts = scene.opts
        self.paths = self.files(scene.outdir, scene.source.stem)
        self.writer = StreamingWriter(
            self.paths["saliency"], width=scene.width, height=scene.height, count=len(opts.band_names),
            dtype="float32", crs=scene.crs, transform=scene.transform, nodata=SALIENCY_NODATA,
            descriptions=opts.band_names,
            tags={**scene.tags(), "methods": ",".join(opts.methods), "layer": ",".join(opts.layers),
                  "normalization": opts.normalize, "region": opts.region.describe(),
                  "score": "probability" if opts.use_probs else "logit", "tile_size": opts.tile_size,
                  "overlap": opts.overlap, "blending": "raised-cosine (Hann) ramps over overlaps", "nodata": "NaN"},
            band_tags=[{"method": m, "layer": layer} for m, layer in opts.bands_out],
            compress=opts.compress, overview_resampling="average",
        )

    def open(self) -> None:
        self.writer.open()

    def write(self, row0: int, saliency: "np.ndarray", prediction: "np.ndarray") -> None:
        self.writer.write(row0, saliency)

    def publish(self, stats: "SceneStats") -> dict[str, Any]:
        """Rescale per scene (``--normalize scene``), publish the COG and its style → the mean per band."""
        from segxai_cli.raster.writer import minmax_scale

        names = self.opts.band_names
        scale = None
        if self.opts.normalize == "scene":
            scale = [minmax_scale(lo, hi) for lo, hi in zip(stats.minimum, stats.maximum)]
            means = {n: m * ratio + off for n, m, (off, ratio) in zip(names, stats.mean_raw, scale)}
            self.writer.tags.update({f"scene_min_{n}": repr(v) for n, v in zip(names, stats.minimum)})
            self.writer.tags.update({f"scene_max_{n}": repr(v) for n, v in zip(names, stats.maximum)})
        else:
            means = dict(zip(names, stats.mean_raw))
        self.writer.finalize(scale)
        vmax = [1.0] * len(names)
        if self.opts.normalize == "none":
            vmax = [m if math.isfinite(m) and m > 0 else 1.0 for m in stats.maximum] or vmax
        write_heatmap_style(self.paths["saliency"], 0.0, vmax[0], label=names[0])
        styles = write_band_styles(self.paths["saliency"], names, vmax)
        remove_stale_sidecars(self.paths["saliency_style"])
        return {"mean_saliency": means, "band_styles": {n: p.name for n, p in styles.items()},
                "display_max": dict(zip(names, vmax))}

    def abort(self) -> None:
        self.writer.abort()

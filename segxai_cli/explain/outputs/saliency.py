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
from segxai_cli.files import Staged
from segxai_cli.raster.style import band_style_path, heatmap_qml

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
        self.staged: list[Staged] = []

    @property
    def writers(self) -> list:
        return [self.writer]

    def write(self, row0: int, saliency: "np.ndarray", prediction: "np.ndarray") -> None:
        self.writer.write(row0, saliency)

    def finalize(self, stats: "SceneStats") -> dict[str, Any]:
        """Rescale per scene (``--normalize scene``), make and check the COG and its style → mean per band.

        ``stats`` hold the raw blended values' min / max / mean over the pixels that count (the
        region's, when the map is clipped to it); clipped maps are clamped at 0 outside.
        """
        from segxai_cli.raster.writer import minmax_scale

        names = self.opts.band_names
        scale = None
        if self.opts.normalize == "scene":
            scale = [minmax_scale(lo, hi) for lo, hi in zip(stats.minimum, stats.maximum)]
            means = {n: m * ratio + off for n, m, (off, ratio) in zip(names, stats.mean_raw, scale)}
            self.writer.tags.update({f"raw_min_{n}": repr(v) for n, v in zip(names, stats.minimum)})
            self.writer.tags.update({f"raw_max_{n}": repr(v) for n, v in zip(names, stats.maximum)})
        else:
            means = dict(zip(names, stats.mean_raw))
        self.writer.finalize(scale, clamp=stats.clipped)
        self.scene.finalized["saliency"] = self.writer.tmp_cog
        vmax = [1.0] * len(names)
        if self.opts.normalize == "none":
            vmax = [m if math.isfinite(m) and m > 0 else 1.0 for m in stats.maximum] or vmax
        tif = self.paths["saliency"]
        self.staged = [Staged.text(self.paths["saliency_style"], heatmap_qml(0.0, vmax[0], label=names[0]))]
        self.staged += [Staged.text(band_style_path(tif, n), heatmap_qml(0.0, top, band=i, label=n))
                        for i, (n, top) in enumerate(zip(names, vmax), 1)]
        return {"mean_saliency": means, "band_styles": {n: band_style_path(tif, n).name for n in names},
                "display_max": dict(zip(names, vmax))}

    def commit(self) -> list[Path]:
        return [self.writer.commit()] + [s.commit() for s in self.staged]

    def abort(self) -> None:
        self.writer.abort()
        for s in self.staged:
            s.abort()

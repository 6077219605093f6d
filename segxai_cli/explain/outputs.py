"""The files of one scene, one class per output kind: saliency COG, prediction COG, their styles.

Each output is opened before the pipeline runs, receives full-width strips while it runs, and is
published (COG-converted, checked, renamed) only after every strip was written; :meth:`abort`
removes its temp files. The scene record (``records.py``) is written after all of them: its presence
means the scene is complete.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional

import numpy as np

from segxai_cli._version import __version__
from segxai_cli.explain.options import ExplainOptions
from segxai_cli.explain.pipeline import PRED_NODATA, SceneStats
from segxai_cli.explain.results import OutputPaths
from segxai_cli.files import remove_stale_sidecars
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.source import RasterSource
from segxai_cli.raster.style import class_colormap, write_class_style, write_heatmap_style
from segxai_cli.raster.writer import StreamingWriter, minmax_scale

SALIENCY_NODATA = float("nan")


def common_tags(source: RasterSource, info: ModelInfo, opts: ExplainOptions) -> dict[str, Any]:
    return {
        "segxai_version": __version__,
        "source": source.name,
        "model": Path(info.path).name if info.path else info.label,
        "model_sha256": info.sha256 or "",
        "model_arch": info.label,
        "target_class": opts.target_class,
        "target_class_name": opts.class_name,
    }


class SaliencyOutput:
    """``<stem>_saliency.tif``: float32, one band per method (and layer), NaN = nodata, + its ``.qml``."""

    def __init__(self, paths: OutputPaths, source: RasterSource, info: ModelInfo, opts: ExplainOptions,
                 width: int, height: int, crs, transform) -> None:
        self.paths, self.opts = paths, opts
        self.writer = StreamingWriter(
            paths.saliency, width=width, height=height, count=len(opts.band_names), dtype="float32", crs=crs,
            transform=transform, nodata=SALIENCY_NODATA, descriptions=opts.band_names,
            tags={**common_tags(source, info, opts), "methods": ",".join(opts.methods), "layer": ",".join(opts.layers),
                  "normalization": opts.normalize, "region": opts.region.describe(),
                  "score": "probability" if opts.use_probs else "logit", "tile_size": opts.tile_size,
                  "overlap": opts.overlap, "blending": "raised-cosine (Hann) ramps over overlaps", "nodata": "NaN"},
            band_tags=[{"method": m, "layer": layer} for m, layer in opts.bands_out],
            compress=opts.compress, overview_resampling="average",
        )

    def open(self) -> None:
        self.writer.open()

    def write(self, row0: int, data: np.ndarray) -> None:
        self.writer.write(row0, data)

    def publish(self, stats: SceneStats) -> dict[str, float]:
        """Rescale per scene (``--normalize scene``), publish the COG and its style; → mean per band."""
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
        vmax = 1.0
        if self.opts.normalize == "none" and stats.maximum and math.isfinite(stats.maximum[0]) and stats.maximum[0] > 0:
            vmax = stats.maximum[0]
        write_heatmap_style(self.paths.saliency, 0.0, vmax, label=names[0])
        remove_stale_sidecars(self.paths.saliency_style)
        return means

    def abort(self) -> None:
        self.writer.abort()


class PredictionOutput:
    """``<stem>_prediction.tif``: uint8 class indexes with a colour table, 255 = nodata, + its ``.qml``."""

    def __init__(self, paths: OutputPaths, source: RasterSource, info: ModelInfo, opts: ExplainOptions,
                 width: int, height: int, crs, transform) -> None:
        self.paths = paths
        self.class_names = class_names(info)
        self.writer = StreamingWriter(
            paths.prediction, width=width, height=height, count=1, dtype="uint8", crs=crs, transform=transform,
            nodata=PRED_NODATA, descriptions=["class"], colormap=class_colormap(len(self.class_names)),
            tags={**common_tags(source, info, opts), "class_names": json.dumps(self.class_names),
                  "nodata_meaning": "255 = input nodata or not computed"},
            compress=opts.compress, overview_resampling="nearest",
        )

    def open(self) -> None:
        self.writer.open()

    def write(self, row0: int, data: np.ndarray) -> None:
        self.writer.write(row0, data)

    def publish(self) -> None:
        self.writer.finalize()
        write_class_style(self.paths.prediction, self.class_names)
        remove_stale_sidecars(self.paths.prediction_style)

    def abort(self) -> None:
        self.writer.abort()


def class_names(info: ModelInfo) -> list[str]:
    n = info.n_classes
    names = list(info.class_names or [])[:n]
    return names + [f"class_{i}" for i in range(len(names), n)]


class SceneOutputs:
    """Both rasters of a scene, opened together, written strip by strip, published or aborted together."""

    def __init__(self, *outputs: Any) -> None:
        self.saliency: Optional[SaliencyOutput] = next((o for o in outputs if isinstance(o, SaliencyOutput)), None)
        self.prediction: Optional[PredictionOutput] = next((o for o in outputs if isinstance(o, PredictionOutput)), None)
        self.all = list(outputs)

    def open(self) -> None:
        for o in self.all:
            o.open()

    def sink(self, row0: int, saliency: np.ndarray, prediction: np.ndarray) -> None:
        self.saliency.write(row0, saliency)
        self.prediction.write(row0, prediction)

    def abort(self) -> None:
        for o in self.all:
            o.abort()

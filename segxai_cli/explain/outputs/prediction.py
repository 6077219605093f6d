"""``<stem>_prediction.tif``: uint8 class indexes, 255 = nodata; its colour table and its ``.qml``.

The colour table lives in the GDAL sidecar ``<stem>_prediction.tif.aux.xml`` because a TIFF palette
cannot hold alpha: there the background class is transparent (see ``raster.style.palette_aux_xml``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.files import Staged
from segxai_cli.model.info import CLASS_NODATA, ModelInfo
from segxai_cli.raster.style import palette_aux_xml, paletted_qml

if TYPE_CHECKING:
    import numpy as np

    from segxai_cli.explain.pipeline import SceneStats


def class_names(info: ModelInfo) -> list[str]:
    n = info.n_classes
    names = list(info.class_names or [])[:n]
    return names + [f"class_{i}" for i in range(len(names), n)]


class PredictionOutput(SceneOutput):
    kind = "prediction"

    @classmethod
    def files(cls, outdir: Path, stem: str) -> dict[str, Path]:
        tif = outdir / f"{stem}_prediction.tif"
        return {"prediction": tif, "prediction_style": outdir / f"{stem}_prediction.qml",
                "prediction_palette": outdir / f"{stem}_prediction.tif.aux.xml"}

    def __init__(self, scene: SceneContext) -> None:
        from segxai_cli.raster.writer import StreamingWriter

        super().__init__(scene)
        self.paths = self.files(scene.outdir, scene.source.stem)
        self.class_names = class_names(scene.info)
        self.writer = StreamingWriter(
            self.paths["prediction"], width=scene.width, height=scene.height, count=1, dtype="uint8", crs=scene.crs,
            transform=scene.transform, nodata=CLASS_NODATA, descriptions=["class"],
            tags={**scene.tags(), "class_names": json.dumps(self.class_names),
                  "nodata_meaning": "255 = input nodata or not computed"},
            compress=scene.opts.compress, overview_resampling="nearest",
        )
        self.staged: list[Staged] = []

    @property
    def writers(self) -> list:
        return [self.writer]

    def write(self, row0: int, saliency: "np.ndarray", prediction: "np.ndarray") -> None:
        self.writer.write(row0, prediction)

    def finalize(self, stats: "SceneStats") -> dict[str, Any]:
        self.writer.finalize()
        self.scene.finalized["prediction"] = self.writer.tmp_cog
        self.staged = [Staged.text(self.paths["prediction_style"], paletted_qml(self.class_names)),
                       Staged.text(self.paths["prediction_palette"], palette_aux_xml(self.class_names))]
        return {}

    def commit(self) -> list[Path]:
        done = [self.writer.commit()]  # removes a stale .aux.xml of an older file first
        return done + [s.commit() for s in self.staged]

    def abort(self) -> None:
        self.writer.abort()
        for s in self.staged:
            s.abort()

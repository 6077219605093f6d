"""``<stem>_prediction.tif``: uint8 class indexes with a colour table, 255 = nodata, and its ``.qml``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.files import remove_stale_sidecars
from segxai_cli.model.info import CLASS_NODATA, ModelInfo
from segxai_cli.raster.style import class_colormap, write_class_style

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
        return {"prediction": outdir / f"{stem}_prediction.tif", "prediction_style": outdir / f"{stem}_prediction.qml"}

    def __init__(self, scene: SceneContext) -> None:
        from segxai_cli.raster.writer import StreamingWriter

        super().__init__(scene)
        self.paths = self.files(scene.outdir, scene.source.stem)
        self.class_names = class_names(scene.info)
        self.writer = StreamingWriter(
            self.paths["prediction"], width=scene.width, height=scene.height, count=1, dtype="uint8", crs=scene.crs,
            transform=scene.transform, nodata=CLASS_NODATA, descriptions=["class"],
            colormap=class_colormap(len(self.class_names)),
            tags={**scene.tags(), "class_names": json.dumps(self.class_names),
                  "nodata_meaning": "255 = input nodata or not computed"},
            compress=scene.opts.compress, overview_resampling="nearest",
        )

    def open(self) -> None:
        self.writer.open()

    def write(self, row0: int, saliency: "np.ndarray", prediction: "np.ndarray") -> None:
        self.writer.write(row0, prediction)

    def publish(self, stats: "SceneStats") -> dict[str, Any]:
        self.writer.finalize()
        write_class_style(self.paths["prediction"], self.class_names)
        remove_stale_sidecars(self.paths["prediction_style"])
        return {}

    def abort(self) -> None:
        self.writer.abort()

"""``segxai.qgs``: the run as a ready QGIS map (QGIS 3.22+), paths relative to the output folder.

One group per scene (sorted by name), top to bottom:

- ``saliency`` — a radio group with one layer per method band of ``<stem>_saliency.tif`` (the same
  file, band N each, with its heatmap style and legend); the first method is shown;
- ``prediction`` — ``<stem>_prediction.tif``, paletted with the class names;
- ``input`` — the scene, RGB from the model's bands, stretched like QGIS's default (cumulative
  2–98 % cut, taken from the quicklook's preview or read from the scene's overviews).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

from segxai_cli.explain.run_outputs.base import RunOutput
from segxai_cli.files import atomic_write_text
from segxai_cli.raster.qgs import (
    Crs,
    Extent,
    Group,
    Layer,
    project_xml,
    relative_source,
    union,
)
from segxai_cli.raster.source import RasterSource
from segxai_cli.raster.style import heatmap_pipe, paletted_pipe, rgb_pipe

log = logging.getLogger("segxai")

PROJECT_NAME = "segxai.qgs"
STRETCH_PREVIEW_SIDE = 256
PREDICTION_OPACITY = 0.35  # under the saliency: the classes show without hiding the heatmap


class QgisProject(RunOutput):
    name = "qgis_project"
    file_name = PROJECT_NAME

    def write(self, outdir: Path, records: Sequence[dict]) -> Optional[Path]:
        scenes = [g for rec in sorted(records, key=lambda r: str(r.get("scene"))) if (g := scene_group(outdir, rec))]
        if not scenes:
            return None
        groups = [g for g, _, _ in scenes]
        xml = project_xml("segxai", groups, scenes[0][1], union([e for _, _, e in scenes]))
        return atomic_write_text(outdir / PROJECT_NAME, xml)


def scene_group(outdir: Path, rec: dict) -> Optional[tuple[Group, Crs, Extent]]:
    """The group of one scene record, its CRS and extent; None when its rasters are gone."""
    import rasterio

    outputs = rec.get("outputs") or {}
    sal, pred = (outdir / str(outputs.get(k, "")) for k in ("saliency", "prediction"))
    if not (sal.is_file() and pred.is_file()):
        return None
    try:
        with rasterio.open(sal) as src:
            names = [d or f"band {i}" for i, d in enumerate(src.descriptions, 1)]
            crs = Crs(src.crs.to_wkt(), ":".join(src.crs.to_authority() or ())) if src.crs else Crs()
            extent: Extent = tuple(src.bounds)  # type: ignore[assignment]
        with rasterio.open(pred) as src:
            classes = json.loads(src.tags().get("class_names") or "[]") or ["background", "class_1"]
    except (OSError, ValueError) as exc:  # RasterioIOError is an OSError; a bad tag a ValueError
        log.warning("%s: left out of the QGIS project (%s)", sal, _first_line(exc))
        return None
    stem, published = str(rec["scene"]), rec.get("published") or {}
    vmax = published.get("display_max") or {}
    sal_src = relative_source(str(sal), outdir)
    methods = Group("saliency", [
        Layer(f"segxai_{stem}_saliency_{i}", name, sal_src, crs, extent,
              heatmap_pipe(0.0, float(vmax.get(name, 1.0)), band=i), checked=i == 1)
        for i, name in enumerate(names, 1)
    ], exclusive=True)
    children: list[Any] = [methods, Layer(f"segxai_{stem}_prediction", "prediction", relative_source(str(pred), outdir),
                                          crs, extent, paletted_pipe(classes, PREDICTION_OPACITY))]
    inp = input_layer(outdir, rec, crs, extent)
    if inp is not None:
        children.append(inp)
    return Group(stem, children), crs, extent


def input_layer(outdir: Path, rec: dict, crs: Crs, extent: Extent) -> Optional[Layer]:
    """The input scene with the model's bands as RGB; None (with a log line) when it cannot be read."""
    from segxai_cli.raster.display import cumulative_cut, read_preview

    location = str(rec.get("input") or "")
    named = [b for b in ((rec.get("options") or {}).get("bands") or []) if str(b).isdigit()]
    bands = [int(b) for b in (rec.get("input_bands") or named or [1, 2, 3])][:3]
    cuts = (rec.get("published") or {}).get("input_stretch")
    if not RasterSource.of(location).exists():  # a missing layer would stop QGIS with a dialog on opening
        log.warning("%s: input not added to the QGIS project (no such file)", location)
        return None
    try:
        if not cuts or len(cuts) != len(bands):
            prev = read_preview(location, bands, STRETCH_PREVIEW_SIDE)
            cuts = cumulative_cut(prev.data, prev.valid)
    except OSError as exc:  # a moved or unreadable input (RasterioIOError too): the project still shows the outputs
        log.warning("%s: input not added to the QGIS project (%s)", location, _first_line(exc))
        return None
    return Layer(f"segxai_{rec['scene']}_input", "input", relative_source(location, outdir), crs, extent,
                 rgb_pipe(bands, [tuple(c) for c in cuts]))


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]

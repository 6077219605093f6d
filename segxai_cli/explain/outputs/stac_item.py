"""``<stem>.stac.json``: a STAC Item describing the scene's outputs, so they join the same catalogs as
the inputs.

Assets: the saliency and prediction COGs (roles ``data``; ``raster:bands`` with data type, nodata and
the statistics read from the finished files) with their QGIS styles and the scene record
(``metadata``); the ``projection`` extension (code or WKT2, shape, transform); properties
``segxai:*`` for the methods, layers, class, model and its hash; a ``derived_from`` link to the
source item or file (secrets hidden). The Item is written as plain JSON — no extra needed to write
it — and is valid per ``pystac``'s validation (STAC 1.1.0, raster v1.1.0, projection v2.0.0; the
tests check it against the schemas).
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from segxai_cli._version import __version__
from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.explain.outputs.prediction import PredictionOutput
from segxai_cli.explain.outputs.saliency import SaliencyOutput
from segxai_cli.files import Staged

if TYPE_CHECKING:
    from segxai_cli.explain.pipeline import SceneStats

STAC_VERSION = "1.1.0"
EXTENSIONS = ["https://stac-extensions.github.io/raster/v1.1.0/schema.json",
              "https://stac-extensions.github.io/projection/v2.0.0/schema.json"]
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
ITEM_SUFFIX = ".stac.json"


class StacItemOutput(SceneOutput):
    kind = "stac_item"

    @classmethod
    def files(cls, outdir: Path, stem: str) -> dict[str, Path]:
        return {"stac_item": outdir / f"{stem}{ITEM_SUFFIX}"}

    def __init__(self, scene: SceneContext) -> None:
        super().__init__(scene)
        self.path = self.files(scene.outdir, scene.source.stem)["stac_item"]
        self.staged: Optional[Staged] = None

    def finalize(self, stats: "SceneStats") -> dict[str, Any]:
        item = scene_item(self.scene)
        self.staged = Staged.text(self.path, json.dumps(item, indent=2) + "\n")
        return {}

    def commit(self) -> list[Path]:
        return [self.staged.commit()] if self.staged else []

    def abort(self) -> None:
        if self.staged:
            self.staged.abort()


def scene_item(scene: SceneContext) -> dict[str, Any]:
    """The Item of a scene whose rasters are finished (read from their checked temp COGs)."""
    from segxai_cli.raster.writer import StreamingWriter

    stem, outdir = scene.source.stem, scene.outdir
    sal = SaliencyOutput.files(outdir, stem)
    pred = PredictionOutput.files(outdir, stem)
    opts, info = scene.opts, scene.info
    assets = {
        "saliency": {"href": f"./{sal['saliency'].name}", "type": COG_TYPE, "roles": ["data"],
                     "title": f"Saliency of class {opts.class_name} ({', '.join(opts.band_names)})",
                     "raster:bands": _raster_bands(StreamingWriter.finished_path(sal["saliency"]))},
        "prediction": {"href": f"./{pred['prediction'].name}", "type": COG_TYPE, "roles": ["data"],
                       "title": "Predicted class (255 = nodata)",
                       "raster:bands": _raster_bands(StreamingWriter.finished_path(pred["prediction"]))},
        "saliency_style": {"href": f"./{sal['saliency_style'].name}", "type": "text/xml",
                           "roles": ["metadata"], "title": "QGIS style"},
        "prediction_style": {"href": f"./{pred['prediction_style'].name}", "type": "text/xml",
                             "roles": ["metadata"], "title": "QGIS style"},
        "record": {"href": f"./{stem}_saliency.json", "type": "application/json", "roles": ["metadata"],
                   "title": "segxai scene record"},
    }
    props = {**_datetime(scene), **_projection(scene),
             "segxai:version": __version__, "segxai:methods": list(opts.methods), "segxai:layers": list(opts.layers),
             "segxai:bands": opts.band_names, "segxai:target_class": opts.target_class,
             "segxai:class_name": opts.class_name, "segxai:normalize": opts.normalize,
             "segxai:region": opts.region.describe(), "segxai:model": info.label,
             "segxai:model_sha256": info.sha256 or None, "segxai:input_bands": list(scene.bands)}
    geometry, bbox = _footprint(scene)
    item = {"type": "Feature", "stac_version": STAC_VERSION, "stac_extensions": EXTENSIONS, "id": stem,
            "geometry": geometry, "properties": props,
            "links": [{"rel": "derived_from", "href": scene.source.href, "title": "explained input"},
                      {"rel": "root", "href": "./catalog.json", "type": "application/json"},
                      {"rel": "parent", "href": "./catalog.json", "type": "application/json"}],
            "assets": assets}
    if bbox is not None:
        item["bbox"] = bbox
    return item


def _raster_bands(path: Path) -> list[dict[str, Any]]:
    import rasterio

    with rasterio.open(path) as src:
        out = []
        for b in range(1, src.count + 1):
            tags = src.tags(b)
            band: dict[str, Any] = {"data_type": src.dtypes[b - 1]}
            nd = src.nodatavals[b - 1]
            if nd is not None:
                band["nodata"] = "nan" if math.isnan(nd) else (int(nd) if float(nd).is_integer() else nd)
            stat = {k: float(tags[f"STATISTICS_{k.upper()}"]) for k in ("minimum", "maximum", "mean", "stddev",
                                                                          "valid_percent")
                    if f"STATISTICS_{k.upper()}" in tags}
            if stat:
                band["statistics"] = stat
            out.append(band)
    return out


def _datetime(scene: SceneContext) -> dict[str, Any]:
    """The acquisition time of a STAC input; else the time of the explanation."""
    item = getattr(scene.source, "item", "")
    if item:
        p = json.loads(item).get("properties", {})
        got = {k: p[k] for k in ("datetime", "start_datetime", "end_datetime") if p.get(k) is not None}
        if got:
            return {"datetime": p.get("datetime"), **got}
    return {"datetime": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _projection(scene: SceneContext) -> dict[str, Any]:
    t = scene.transform
    out: dict[str, Any] = {"proj:shape": [scene.height, scene.width],
                           "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f, 0.0, 0.0, 1.0]}
    crs = scene.crs
    if crs is None:
        out["proj:code"] = None
        return out
    epsg = crs.to_epsg()
    if epsg:
        out["proj:code"] = f"EPSG:{epsg}"
    else:
        out["proj:wkt2"] = crs.to_wkt()
    return out


def _footprint(scene: SceneContext):
    """The scene's outline in lon/lat (GeoJSON), or (None, None) without a CRS."""
    if scene.crs is None:
        return None, None
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds

    bottom, left, top, right = array_bounds(scene.height, scene.width, scene.transform)
    west, south, east, north = transform_bounds(scene.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21)
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north]

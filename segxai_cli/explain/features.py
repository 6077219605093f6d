"""``--per-feature``: "why was *this* building segmented", one explanation per vector feature.

Each feature of the ``--vector`` layer that overlaps the scene is explained on its own, in a window
around it (its bounds plus half a tile of context, at least one tile, inside the scene), with the
feature alone as the region. The window is read straight from the scene through GDAL's
``vrt://…?srcwin=`` (:class:`~segxai_cli.raster.source.WindowSource`), so every output of a feature is a
small, georeferenced file set of its own: ``<stem>_<feature>_saliency.tif``, ``…_prediction.tif``,
styles and a record — named by ``--feature-id ATTR`` (default: the feature's position, ``f<N>``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

from rasterio import windows
from rasterio.windows import Window

from segxai_cli.errors import InputError
from segxai_cli.explain.results import SceneResult, attempt
from segxai_cli.raster.reader import open_raster_quiet
from segxai_cli.raster.regions import GeometryRegion, load_vector
from segxai_cli.raster.source import RasterSource, WindowSource


def explain_features(explainer, source: RasterSource, outdir: Path, *, overwrite: bool, skip_existing: bool,
                     position: tuple[int, int]) -> SceneResult:
    """Explain every feature overlapping ``source``; → one result whose ``parts`` are the features'."""

    spec = explainer.opts.region
    with open_raster_quiet(source) as src:
        region = load_vector(spec.location, src, spec.layer)
        width, height, transform = src.width, src.height, src.transform
    hits = [i for i in range(len(region.geometries)) if region.only(i).any_in_scene(width, height)]
    if not hits:
        raise InputError(f"{source}: no feature of {spec.location} overlaps the scene")
    parts, used = [], set()
    for i in hits:
        name = unique(feature_name(region.properties[i], spec.feature_id, i), used)
        win = context_window(region.pixel_bounds(i), width, height, int(explainer.opts.tile_size))
        sub = WindowSource.of_window(source, win, f"{source.stem}_{name}")
        sub_region = GeometryRegion([region.geometries[i]], windows.transform(Window(*win), transform),
                                    f"{region.label}:{name}", region.all_touched, [region.properties[i]])
        parts.append(attempt(sub, True, explainer.scene, sub, outdir, overwrite=overwrite,
                             skip_existing=skip_existing, position=position, region=sub_region))
    failed = [p for p in parts if p.status == "failed"]
    status = "failed" if failed else ("skipped" if all(p.status == "skipped" for p in parts) else "done")
    error = f"{len(failed)} of {len(parts)} feature(s) failed: {failed[0].error}" if failed else None
    return SceneResult(source, status, error=error, parts=parts)


def feature_name(props: dict[str, Any], attribute: Optional[str], index: int) -> str:
    """A file-name-safe name for a feature: its ``attribute`` value, or ``f<index>``."""
    if attribute is None:
        return f"f{props.get('_index', index)}"
    if attribute not in props:
        known = ", ".join(k for k in props if not k.startswith("_"))
        raise InputError(f"--feature-id {attribute!r}: the features have no such attribute (attributes: {known})")
    value = str(props[attribute]).strip()
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", value)[:80] or f"f{index}"


def unique(name: str, used: set[str]) -> str:
    out, k = name, 2
    while out in used:
        out, k = f"{name}_{k}", k + 1
    used.add(out)
    return out


def context_window(bounds: tuple[float, float, float, float], width: int, height: int,
                   tile: int) -> tuple[int, int, int, int]:
    """(col, row, w, h): the feature's pixel bounds plus half a tile each side, at least a tile, in the scene."""
    c0, r0, c1, r1 = bounds
    margin = tile // 2
    c0, r0 = max(0, math.floor(c0) - margin), max(0, math.floor(r0) - margin)
    c1, r1 = min(width, math.ceil(c1) + margin), min(height, math.ceil(r1) + margin)

    def grow(a: int, b: int, size: int) -> tuple[int, int]:
        want = min(tile, size)
        if b - a >= want:
            return a, b
        a = max(0, min(a - (want - (b - a)) // 2, size - want))
        return a, a + want

    c0, c1 = grow(c0, c1, width)
    r0, r1 = grow(r0, r1, height)
    return c0, r0, c1 - c0, r1 - r0

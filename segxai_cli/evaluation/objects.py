"""The per-object study (``--vector``): every object of a vector layer is a target of its own.

Each feature that overlaps the scene gets one model tile centred on it (inside the scene; a scene
smaller than a tile is padded by the tile rule). In that tile the object's pixels are the target T
*and* the pixels whose class score the CAMs explain; everything else (thresholds, budgets, modes,
curves, ignored pixels from ``--masks``) is as in the tile study. An object larger than a tile is
cut to the tile (counted as ``clipped_objects`` in the run record). The row's ``object`` column names
the feature (``--feature-id ATTR``, default ``f<N>``, N = its position in the layer); ``tile`` is the
object's running number in the scene, so each object is one resampling unit of the intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from rasterio.windows import Window

from segxai_cli.errors import InputError


@dataclass(frozen=True)
class SceneObject:
    name: str
    index: int  # position in the vector layer
    window: Window
    clipped: bool


def object_name(props: dict[str, Any], attribute: str | None, index: int) -> str:
    """The feature's ``attribute`` value, or ``f<index>``."""
    if attribute is None:
        return f"f{props.get('_index', index)}"
    if attribute not in props:
        known = ", ".join(k for k in props if not k.startswith("_"))
        raise InputError(f"--feature-id {attribute!r}: the features have no such attribute (attributes: {known})")
    return str(props[attribute])


def scene_objects(region, width: int, height: int, tile: int, attribute: str | None) -> list[SceneObject]:
    """The features of ``region`` (a :class:`~segxai_cli.raster.regions.GeometryRegion`) that overlap the scene."""
    out = []
    for i in range(len(region.geometries)):
        if not region.only(i).any_in_scene(width, height):
            continue
        c0, r0, c1, r1 = region.pixel_bounds(i)
        col, w = _centre(c0, c1, width, tile)
        row, h = _centre(r0, r1, height, tile)
        clipped = c0 < col or r0 < row or c1 > col + w or r1 > row + h
        out.append(SceneObject(object_name(region.properties[i], attribute, i), i, Window(col, row, w, h), clipped))
    return out


def _centre(a: float, b: float, size: int, tile: int) -> tuple[int, int]:
    """Offset and length of a tile-long span centred on [a, b], inside [0, size)."""
    length = min(tile, size)
    start = int(round((a + b) / 2 - length / 2))
    return max(0, min(start, size - length)), length


def object_targets(region, objects: list[SceneObject], tile: int) -> np.ndarray:
    """(B, tile, tile) bool: each object's pixels in its own window (zero padding outside the scene)."""
    out = np.zeros((len(objects), tile, tile), bool)
    for k, obj in enumerate(objects):
        m = region.only(obj.index).window_mask(obj.window)
        out[k, : m.shape[0], : m.shape[1]] = m
    return out

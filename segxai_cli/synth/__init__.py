"""Synthetic, georeferenced aerial scenes with an aligned building mask.

Everything is a pure function of ``(seed, global pixel coordinates)``:

* The scene *layout* is a street grid (rotated by a per-seed angle) whose lines are jittered per line
  index, with road segments present or absent per ``(line, segment)``. The blocks between the lines
  are typed (residential, industrial, park, field) and filled with objects (buildings as rotated
  rectangles or L-shapes, paved pads and parking lots, trees) by a random generator seeded from
  ``hash(seed, block_i, block_j)``. A block's objects never leave its neighbourhood.
* Each window is rendered by rasterising only the objects that intersect it; textures and sensor
  noise are value noise / per-pixel hashes of the *global* pixel coordinates, and the slight blur is
  computed with a one-pixel halo. A window therefore renders exactly the same pixels whatever the
  block size, and blocks join seamlessly (tested).

Scale: the content is designed for 0.3 m pixels (roads 6-13 m wide, buildings 6-40 m a side);
``pixel_size`` only changes the georeferencing. Mask: 1 = building footprint (roof, including roof
parts under an overhanging tree canopy), 0 = everything else (shadows, roads, pads, trees, nodata).

Modules, each importing only those below it:

* :mod:`.geotiff` — profiles, :func:`generate_scene` (in memory), :func:`write_scene` (streams a
  scene of any size to two tiled, compressed GeoTIFFs window by window, written atomically);
* :mod:`.render` — :func:`render_window`: blur, sensor noise, quantisation, nodata border;
* :mod:`.paint` — the layers of a region (ground, roads, pads, shadows, roofs, trees);
* :mod:`.blocks` — the objects of one block of the street grid;
* :mod:`.layout` — per-seed parameters, street lines and segments, block types;
* :mod:`.noise` — scalar and vectorised hashes, value noise.
"""

from __future__ import annotations

from segxai_cli.synth.geotiff import (
    DEFAULT_CRS,
    DEFAULT_ORIGIN,
    generate_scene,
    mask_profile,
    scene_names,
    scene_profile,
    write_scene,
    write_scenes,
)
from segxai_cli.synth.render import UINT16_SCALE, render_window

__all__ = [
    "DEFAULT_CRS",
    "DEFAULT_ORIGIN",
    "UINT16_SCALE",
    "generate_scene",
    "render_window",
    "scene_profile",
    "mask_profile",
    "scene_names",
    "write_scene",
    "write_scenes",
]

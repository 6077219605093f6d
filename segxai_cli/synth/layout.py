"""The scene layout at the coarsest level: per-seed parameters, the street grid, the block types.

The grid is defined in a frame (u, v) rotated by a per-seed angle against the image axes. Grid line
``i`` of an axis sits near ``i * pitch`` (jittered per line), and the road on it exists or not per
``(line, segment)``; the block between lines ``i, i+1`` and ``j, j+1`` gets a type. Every one of these
is a pure, cached function of ``(seed, indices)`` (scalar hashes from :mod:`.noise`), so any window
can ask for just the lines and blocks around it, in any order, and get the same answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from segxai_cli.synth.noise import _srng, _sunif

RESIDENTIAL, INDUSTRIAL, PARK, FIELD = 0, 1, 2, 3


@dataclass(frozen=True)
class _Params:
    seed: int
    ca: float  # street-grid rotation (cos, sin)
    sa: float
    cell_u: float  # mean block pitch in px along the grid axes
    cell_v: float
    shadow: tuple[float, float]  # shadow displacement in px per metre of height (image x, y)
    sun: tuple[float, float]  # unit vector towards the sun (image x, y), horizontal
    gain: tuple[float, float, float]
    p_road: float


@lru_cache(maxsize=64)
def _params(seed: int) -> _Params:
    rng = _srng(seed, 1)
    alpha = math.radians(rng.uniform(-40.0, 40.0))
    az = math.radians(rng.uniform(-55.0, 55.0))  # shadows point "north" +- 55 deg (northern summer)
    dx, dy = math.sin(az), -math.cos(az)
    k = rng.uniform(0.55, 0.9) / 0.3  # shadow length per metre of height, in 0.3 m px
    brightness = rng.uniform(0.92, 1.08)
    gain = tuple(float(brightness * rng.uniform(0.95, 1.05)) for _ in range(3))
    return _Params(
        seed=seed,
        ca=math.cos(alpha),
        sa=math.sin(alpha),
        cell_u=float(rng.uniform(270.0, 360.0)),
        cell_v=float(rng.uniform(270.0, 360.0)),
        shadow=(dx * k, dy * k),
        sun=(-dx, -dy),
        gain=gain,  # type: ignore[arg-type]
        p_road=float(rng.uniform(0.6, 0.85)),
    )


@dataclass(frozen=True)
class _Line:
    pos: float
    half: float  # half width of the asphalt
    walk: float  # sidewalk width (0 = none)
    main: bool  # lane markings
    grey: float  # asphalt grey level


@lru_cache(maxsize=4096)
def _line(seed: int, axis: int, i: int) -> _Line:
    p = _params(seed)
    pitch = p.cell_u if axis == 0 else p.cell_v
    rng = _srng(seed, 2, axis, i)
    main = bool(rng.random() < 0.3)
    half = rng.uniform(16.0, 21.0) if main else rng.uniform(10.0, 15.0)
    walk = rng.uniform(4.0, 8.0) if rng.random() < 0.6 else 0.0
    return _Line(
        pos=i * pitch + rng.uniform(-0.12, 0.12) * pitch,
        half=float(half),
        walk=float(walk),
        main=main,
        grey=float(rng.uniform(78.0, 112.0)),
    )


def _segment(seed: int, axis: int, i: int, j: int) -> bool:
    """Whether the road on grid line ``i`` of ``axis`` exists along block ``j`` of the other axis."""
    return _sunif(seed, 3, axis, i, j) < _params(seed).p_road


def _block_type(seed: int, i: int, j: int) -> int:
    r = _sunif(seed, 4, i, j)
    return RESIDENTIAL if r < 0.56 else INDUSTRIAL if r < 0.77 else PARK if r < 0.88 else FIELD

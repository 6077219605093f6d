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

``write_scene`` streams a scene of any size to two tiled, compressed GeoTIFFs window by window, so
memory does not grow with the scene.
"""

from __future__ import annotations

import math
import os
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from segxai_cli.errors import OutputError

__all__ = [
    "DEFAULT_CRS",
    "DEFAULT_ORIGIN",
    "UINT16_SCALE",
    "generate_scene",
    "render_window",
    "scene_profile",
    "mask_profile",
    "write_scene",
]

DEFAULT_CRS = "EPSG:32633"  # WGS 84 / UTM zone 33N
DEFAULT_ORIGIN = (601_000.0, 5_340_000.0)  # upper-left corner, near Vienna (UTM 33N, metres)
UINT16_SCALE = 16  # uint16 scenes are 12-bit-like: the 8-bit radiometry x 16 (0..4080)
BAND_NAMES = ("red", "green", "blue")
NOISE_SIGMA = 2.5  # sensor noise, in 8-bit digital numbers
_HALO = 1  # blur radius

# ----------------------------------------------------------------------------------------------
# Hashing: scalar (layout) and vectorised (textures, noise), both stable across platforms.
# ----------------------------------------------------------------------------------------------
_M64 = (1 << 64) - 1


def _smix(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _shash(*values: int) -> int:
    h = 0x2545F4914F6CDD1D
    for v in values:
        h = _smix(h ^ (int(v) & _M64))
    return h


def _srng(*values: int) -> np.random.Generator:
    return np.random.default_rng(_shash(*values))


def _sunif(*values: int) -> float:
    return (_shash(*values) >> 11) * (1.0 / (1 << 53))


_K1 = np.uint64(0x9E3779B97F4A7C15)
_K2 = np.uint64(0xC2B2AE3D27D4EB4F)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S40 = (np.uint64(s) for s in (30, 27, 31, 40))


def _amix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S30)
    h = h * _C1
    h = h ^ (h >> _S27)
    h = h * _C2
    return h ^ (h >> _S31)


def _ahash(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """uint64 hash of integer lattice coordinates (broadcasting int64 arrays)."""
    hx = np.ascontiguousarray(ix, dtype=np.int64).view(np.uint64)
    hy = np.ascontiguousarray(iy, dtype=np.int64).view(np.uint64)
    h = _amix(hx * _K1 + np.uint64(key & _M64))
    return _amix(h + hy * _K2)


def _aunif(h: np.ndarray) -> np.ndarray:
    return (h >> _S40).astype(np.float32) * np.float32(1.0 / (1 << 24))


def _vnoise(xc: np.ndarray, yc: np.ndarray, scale: float, key: int) -> np.ndarray:
    """Smooth value noise in [0, 1] on the grid ``yc x xc`` of global pixel-centre coordinates."""

    def axis(c):
        t = c / scale
        i = np.floor(t)
        f = t - i
        s = (f * f * (3.0 - 2.0 * f)).astype(np.float32)
        return i.astype(np.int64), s

    ix, sx = axis(xc)
    iy, sy = axis(yc)
    gx = np.arange(ix.min(), ix.max() + 2, dtype=np.int64)
    gy = np.arange(iy.min(), iy.max() + 2, dtype=np.int64)
    lat = _aunif(_ahash(gx[None, :], gy[:, None], key))
    jx = ix - gx[0]
    jy = iy - gy[0]
    lx = lat[:, jx] * (np.float32(1) - sx) + lat[:, jx + 1] * sx
    return lx[jy] * (np.float32(1) - sy)[:, None] + lx[jy + 1] * sy[:, None]


def _tri(t):
    """Triangle wave in [0, 1] with period 1 (no transcendental functions: bit-stable everywhere)."""
    f = t - np.floor(t)
    return np.abs(2.0 * f - 1.0)


# ----------------------------------------------------------------------------------------------
# Per-seed parameters and the street grid
# ----------------------------------------------------------------------------------------------
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


# ----------------------------------------------------------------------------------------------
# Objects
# ----------------------------------------------------------------------------------------------
@dataclass
class _Rect:
    cx: float  # centre, image px (global)
    cy: float
    ct: float  # cos/sin of the long ("a") axis angle in the image
    st: float
    hx: float  # half extents along a and b
    hy: float

    def corners(self, dx: float = 0.0, dy: float = 0.0):
        out = []
        for sa_, sb_ in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
            a, b = sa_ * self.hx, sb_ * self.hy
            out.append((self.cx + a * self.ct - b * self.st + dx, self.cy + a * self.st + b * self.ct + dy))
        return out


@dataclass
class _Building:
    parts: list[_Rect]
    roof: str  # gable | hip | flat
    color: tuple[float, float, float]
    height: float  # metres
    texture: str  # tiles | metal | plain
    hvac: list[_Rect] = field(default_factory=list)
    bbox: tuple[float, float, float, float] = (0, 0, 0, 0)


@dataclass
class _Tree:
    cx: float
    cy: float
    r: float
    height: float
    color: tuple[float, float, float]
    bbox: tuple[float, float, float, float] = (0, 0, 0, 0)


@dataclass
class _Pad:
    rect: _Rect
    color: tuple[float, float, float]
    stripes: bool
    bbox: tuple[float, float, float, float] = (0, 0, 0, 0)


def _bbox(points) -> tuple[float, float, float, float]:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


_ROOF_RES = (  # (weight, colour)
    (0.30, (166, 78, 58)),  # red tiles
    (0.10, (186, 104, 70)),  # terracotta
    (0.10, (116, 64, 50)),  # dark red-brown
    (0.14, (122, 122, 126)),  # grey
    (0.12, (72, 74, 80)),  # dark grey
    (0.06, (50, 52, 58)),  # anthracite
    (0.08, (196, 194, 188)),  # light
    (0.07, (132, 108, 86)),  # brownish
    (0.03, (96, 110, 98)),  # greenish (copper / moss)
)
_ROOF_IND = (
    (0.32, (128, 128, 130)),  # grey
    (0.22, (176, 176, 172)),  # light concrete
    (0.14, (205, 205, 202)),  # white membrane
    (0.14, (80, 82, 86)),  # dark (bitumen)
    (0.12, (108, 118, 132)),  # blue-grey metal
    (0.06, (150, 84, 64)),  # red metal
)


def _pick(rng: np.random.Generator, palette) -> tuple[float, float, float]:
    w = np.array([p[0] for p in palette])
    c = palette[int(rng.choice(len(palette), p=w / w.sum()))][1]
    jit = rng.uniform(-9.0, 9.0)
    return tuple(float(np.clip(v + jit + rng.uniform(-5.0, 5.0), 25, 235)) for v in c)  # type: ignore[return-value]


class _CellBuilder:
    """Places objects for one block; works in the grid frame (u, v), stores image coordinates."""

    def __init__(self, seed: int, i: int, j: int):
        self.p = _params(seed)
        self.seed = seed
        self.rng = _srng(seed, 5, i, j)
        self.buildings: list[_Building] = []
        self.trees: list[_Tree] = []
        self.pads: list[_Pad] = []

    # frame conversions
    def to_xy(self, u: float, v: float):
        p = self.p
        return u * p.ca - v * p.sa, u * p.sa + v * p.ca

    def rect(self, u, v, phi, hx, hy) -> _Rect:
        x, y = self.to_xy(u, v)
        th = math.atan2(self.p.sa, self.p.ca) + phi
        return _Rect(x, y, math.cos(th), math.sin(th), hx, hy)

    def building(self, slot, *, size, angle_sd, wild, l_prob, roofs, palette, heights, texture, hvac=False):
        """Fit a building (rectangle or L) into ``slot`` = (u0, u1, v0, v1); returns its footprint in uv."""
        rng = self.rng
        u0, u1, v0, v1 = slot
        su, sv = u1 - u0, v1 - v0
        if su < 22 or sv < 22:
            return None
        hx = rng.uniform(*size) / 2
        hy = hx * rng.uniform(0.45, 0.95)
        parts = [(0.0, 0.0, 0.0, hx, hy)]  # (pa, pb, rotation, hx, hy) in building frame
        if rng.random() < l_prob:
            wx = hx * rng.uniform(0.28, 0.5)
            wy = hy * rng.uniform(0.6, 1.1)
            sa_, sb_ = rng.choice([-1.0, 1.0]), rng.choice([-1.0, 1.0])
            parts.insert(0, (sa_ * (hx - wx), sb_ * (hy + wy - 2.0), math.pi / 2, wy + 2.0, wx))
        phi = rng.uniform(-math.pi / 4, math.pi / 4) if rng.random() < wild else rng.normal(0.0, angle_sd)
        if rng.random() < 0.5:
            phi += math.pi / 2
        c, s = math.cos(phi), math.sin(phi)
        pts = []
        for pa, pb, rot, ex, ey in parts:
            cr, sr = math.cos(rot), math.sin(rot)
            for ea, eb in ((ex, ey), (ex, -ey), (-ex, ey), (-ex, -ey)):
                a = pa + ea * cr - eb * sr
                b = pb + ea * sr + eb * cr
                pts.append((a * c - b * s, a * s + b * c))
        umin, umax = min(q[0] for q in pts), max(q[0] for q in pts)
        vmin, vmax = min(q[1] for q in pts), max(q[1] for q in pts)
        k = min(1.0, (su - 4) / (umax - umin), (sv - 4) / (vmax - vmin))
        if min(hx, hy) * k < 10.0:  # smaller than 6 m a side
            return None
        free_u = su - 4 - k * (umax - umin)
        free_v = sv - 4 - k * (vmax - vmin)
        cu = u0 + 2 + rng.uniform(0, max(free_u, 0)) - k * umin
        cv = v0 + 2 + rng.uniform(0, max(free_v, 0)) - k * vmin
        rects = []
        for pa, pb, rot, ex, ey in parts:
            pa, pb, ex, ey = pa * k, pb * k, ex * k, ey * k
            rects.append(self.rect(cu + pa * c - pb * s, cv + pa * s + pb * c, phi + rot, ex, ey))
        roof = roofs[int(rng.choice(len(roofs)))]
        color = _pick(rng, palette)
        height = float(rng.uniform(*heights))
        tex = texture if texture != "tiles" or color[0] > color[2] + 40 else "plain"
        b = _Building(rects, roof, color, height, tex)
        if hvac and roof == "flat":
            main = rects[-1]
            for _ in range(int(rng.integers(0, 5))):
                ex, ey = rng.uniform(3, 7), rng.uniform(3, 7)
                if main.hx < ex + 8 or main.hy < ey + 8:
                    break
                a = rng.uniform(-(main.hx - ex - 6), main.hx - ex - 6)
                bb = rng.uniform(-(main.hy - ey - 6), main.hy - ey - 6)
                b.hvac.append(
                    _Rect(main.cx + a * main.ct - bb * main.st, main.cy + a * main.st + bb * main.ct, main.ct, main.st, ex, ey)
                )
        dx, dy = self.p.shadow[0] * height, self.p.shadow[1] * height
        b.bbox = _bbox([q for r in rects for q in r.corners() + r.corners(dx, dy)])
        self.buildings.append(b)
        return (cu + k * umin, cu + k * umax, cv + k * vmin, cv + k * vmax)

    def tree(self, u, v, *, r=(6.0, 14.0), avoid=True):
        rng = self.rng
        x, y = self.to_xy(u, v)
        rad = float(rng.uniform(*r))
        if avoid:  # keep trunks off roofs: canopies may overhang roof edges, not sit on them
            for b in self.buildings:
                for rc in b.parts:
                    dx, dy = x - rc.cx, y - rc.cy
                    a = dx * rc.ct + dy * rc.st
                    bb = -dx * rc.st + dy * rc.ct
                    if abs(a) < rc.hx + rad * 0.3 and abs(bb) < rc.hy + rad * 0.3:
                        return
        dark = rng.random() < 0.25
        base = (38, 58, 36) if dark else (58 + rng.uniform(-8, 14), 84 + rng.uniform(-8, 16), 44 + rng.uniform(-6, 8))
        height = float(rng.uniform(5.0, 14.0))
        sx, sy = self.p.shadow[0] * height, self.p.shadow[1] * height
        t = _Tree(x, y, rad, height, tuple(float(c) for c in base))  # type: ignore[arg-type]
        t.bbox = (min(x, x + sx) - rad * 1.2, min(y, y + sy) - rad * 1.2, max(x, x + sx) + rad * 1.2, max(y, y + sy) + rad * 1.2)
        self.trees.append(t)

    def pad(self, u0, u1, v0, v1, color, stripes=False):
        if u1 - u0 < 8 or v1 - v0 < 8:
            return
        r = self.rect((u0 + u1) / 2, (v0 + v1) / 2, 0.0, (u1 - u0) / 2, (v1 - v0) / 2)
        self.pads.append(_Pad(r, color, stripes, _bbox(r.corners())))


@lru_cache(maxsize=4096)
def _cell_objects(seed: int, i: int, j: int):
    """Objects of block (i, j): (pads, buildings, trees) in image pixel coordinates."""
    lu0, lu1 = _line(seed, 0, i), _line(seed, 0, i + 1)
    lv0, lv1 = _line(seed, 1, j), _line(seed, 1, j + 1)
    cb = _CellBuilder(seed, i, j)
    rng = cb.rng
    setback = rng.uniform(5.0, 18.0)
    u0 = lu0.pos + lu0.half + lu0.walk + setback
    u1 = lu1.pos - lu1.half - lu1.walk - setback
    v0 = lv0.pos + lv0.half + lv0.walk + setback
    v1 = lv1.pos - lv1.half - lv1.walk - setback
    kind = _block_type(seed, i, j)
    if u1 - u0 < 40 or v1 - v0 < 40:
        return (), (), ()

    if kind == RESIDENTIAL:
        rows = max(1, int(round((v1 - v0) / rng.uniform(110.0, 150.0))))
        pitch = rng.uniform(62.0, 100.0)
        ncol = max(1, int(round((u1 - u0) / pitch)))
        pw, ph = (u1 - u0) / ncol, (v1 - v0) / rows
        for r in range(rows):
            for c in range(ncol):
                pu0, pv0 = u0 + c * pw, v0 + r * ph
                slot = (pu0 + 3, pu0 + pw - 3, pv0 + 3, pv0 + ph - 3)
                fp = None
                if rng.random() < 0.88:
                    fp = cb.building(
                        slot,
                        size=(44.0, max(48.0, min(110.0, pw * 1.1))),
                        angle_sd=0.05,
                        wild=0.12,
                        l_prob=0.3,
                        roofs=("gable", "gable", "hip", "hip", "flat"),
                        palette=_ROOF_RES,
                        heights=(4.0, 10.0),
                        texture="tiles",
                    )
                if fp is not None and rng.random() < 0.35:  # driveway / terrace
                    du = rng.uniform(8, 16)
                    mid = rng.uniform(fp[0] + du, fp[1] - du) if fp[1] - fp[0] > 2 * du + 1 else (fp[0] + fp[1]) / 2
                    g = rng.uniform(120, 175)
                    if r == 0:
                        cb.pad(mid - du, mid + du, v0 - setback + 1, fp[2], (g, g * 0.98, g * 0.95))
                    else:
                        cb.pad(mid - du, mid + du, fp[3], v1 + setback - 1, (g, g * 0.98, g * 0.95))
                for _ in range(int(rng.integers(0, 4))):
                    cb.tree(rng.uniform(slot[0], slot[1]), rng.uniform(slot[2], slot[3]))
    elif kind == INDUSTRIAL:
        n = int(rng.integers(1, 4))
        along_u = (u1 - u0) >= (v1 - v0)
        span = (u1 - u0) if along_u else (v1 - v0)
        for k in range(n):
            a0, a1 = (u0, v0)[not along_u] + k * span / n, (u0, v0)[not along_u] + (k + 1) * span / n
            slot = (a0 + 4, a1 - 4, v0, v1) if along_u else (u0, u1, a0 + 4, a1 - 4)
            if rng.random() < 0.22:  # parking lot instead of a hall
                g = rng.uniform(70, 105)
                w = rng.uniform(0.5, 0.9)
                su, sv = slot[1] - slot[0], slot[3] - slot[2]
                cb.pad(slot[0], slot[0] + su * w, slot[2], slot[2] + sv * w, (g, g, g * 1.02), stripes=True)
                continue
            cb.building(
                slot,
                size=(66.0, 134.0),
                angle_sd=0.02,
                wild=0.05,
                l_prob=0.2,
                roofs=("flat", "flat", "flat", "gable"),
                palette=_ROOF_IND,
                heights=(6.0, 16.0),
                texture="metal" if rng.random() < 0.4 else "plain",
                hvac=True,
            )
        for _ in range(int(rng.integers(0, 5))):
            cb.tree(rng.uniform(u0, u1), rng.uniform(v0, v1), r=(5.0, 10.0))
    elif kind == PARK:
        if rng.random() < 0.25:
            cu, cv = rng.uniform(u0, u1), rng.uniform(v0, v1)
            cb.building(
                (cu - 30, cu + 30, cv - 30, cv + 30),
                size=(22.0, 40.0),
                angle_sd=0.5,
                wild=0.5,
                l_prob=0.0,
                roofs=("hip", "flat", "gable"),
                palette=_ROOF_RES,
                heights=(3.0, 5.0),
                texture="plain",
            )
        for _ in range(int(rng.integers(2, 6))):
            cu, cv = rng.uniform(u0, u1), rng.uniform(v0, v1)
            for _ in range(int(rng.integers(3, 14))):
                cb.tree(float(np.clip(cu + rng.normal(0, 28), u0, u1)), float(np.clip(cv + rng.normal(0, 28), v0, v1)), r=(7.0, 16.0))
    else:  # FIELD: a farm yard in a corner, a hedge of trees along one edge
        if rng.random() < 0.6:
            cu = u0 + rng.uniform(0, max(1.0, (u1 - u0) - 150))
            cv = v0 + rng.uniform(0, max(1.0, (v1 - v0) - 150))
            for _ in range(int(rng.integers(1, 3))):
                cb.building(
                    (cu, cu + 150, cv, cv + 150),
                    size=(40.0, 100.0),
                    angle_sd=0.03,
                    wild=0.1,
                    l_prob=0.25,
                    roofs=("gable", "gable", "flat"),
                    palette=_ROOF_RES if rng.random() < 0.5 else _ROOF_IND,
                    heights=(4.0, 9.0),
                    texture="plain",
                )
                cu, cv = cu + rng.uniform(-40, 60), cv + rng.uniform(40, 80)
        if rng.random() < 0.6:
            v = v0 + rng.uniform(0, 10)
            for u in np.arange(u0, u1, rng.uniform(18, 30)):
                cb.tree(float(u), float(v + rng.normal(0, 3)), r=(6.0, 11.0))
    return tuple(cb.pads), tuple(cb.buildings), tuple(cb.trees)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def _sub(bbox, x0, y0, w, h):
    c0 = max(0, int(math.floor(bbox[0] - x0)) - 1)
    c1 = min(w, int(math.ceil(bbox[2] - x0)) + 2)
    r0 = max(0, int(math.floor(bbox[1] - y0)) - 1)
    r1 = min(h, int(math.ceil(bbox[3] - y0)) + 2)
    if c0 >= c1 or r0 >= r1:
        return None
    return r0, r1, c0, c1


def _local(rect: _Rect, xs, ys):
    dx = xs[None, :] - rect.cx
    dy = ys[:, None] - rect.cy
    return dx * rect.ct + dy * rect.st, -dx * rect.st + dy * rect.ct


def _t_interval(a, half, d):
    if abs(d) < 1e-9:
        inside = np.abs(a) <= half
        return np.where(inside, -np.inf, np.inf), np.where(inside, np.inf, -np.inf)
    t1 = (a - half) / d
    t2 = (a + half) / d
    return np.minimum(t1, t2), np.maximum(t1, t2)


def _rect_shadow(rect: _Rect, xs, ys, dx, dy):
    """Pixels covered by the rectangle swept along (0..1) x (dx, dy)."""
    a, b = _local(rect, xs, ys)
    da = dx * rect.ct + dy * rect.st
    db = -dx * rect.st + dy * rect.ct
    la, ha = _t_interval(a, rect.hx, da)
    lb, hb = _t_interval(b, rect.hy, db)
    lo = np.maximum(np.maximum(la, lb), 0.0)
    hi = np.minimum(np.minimum(ha, hb), 1.0)
    return lo <= hi


def _render_region(seed: int, x0: int, y0: int, w: int, h: int):
    """Float RGB (3, h, w) in 8-bit units (before blur and sensor noise) and mask (h, w)."""
    p = _params(seed)
    key = _shash(seed, 99)
    xc = x0 + np.arange(w, dtype=np.float64) + 0.5
    yc = y0 + np.arange(h, dtype=np.float64) + 0.5
    U = xc[None, :] * p.ca + yc[:, None] * p.sa
    V = -xc[None, :] * p.sa + yc[:, None] * p.ca

    cu = [x * p.ca + y * p.sa for x in (x0, x0 + w) for y in (y0, y0 + h)]
    cv = [-x * p.sa + y * p.ca for x in (x0, x0 + w) for y in (y0, y0 + h)]
    i_lo, i_hi = int(math.floor(min(cu) / p.cell_u)) - 2, int(math.floor(max(cu) / p.cell_u)) + 2
    j_lo, j_hi = int(math.floor(min(cv) / p.cell_v)) - 2, int(math.floor(max(cv) / p.cell_v)) + 2
    ulines = [_line(seed, 0, i) for i in range(i_lo, i_hi + 1)]
    vlines = [_line(seed, 1, j) for j in range(j_lo, j_hi + 1)]
    ci = np.searchsorted(np.array([ln.pos for ln in ulines]), U, side="right") - 1
    cj = np.searchsorted(np.array([ln.pos for ln in vlines]), V, side="right") - 1
    ni, nj = len(ulines), len(vlines)

    # --- ground: grass, bare soil, paving, crops; per-block parameters looked up per pixel
    btype = np.array([[_block_type(seed, i, j) for j in range(j_lo, j_hi + 1)] for i in range(i_lo, i_hi + 1)])
    soil_thr = np.array([0.70, 0.62, 0.80, 0.0], dtype=np.float32)[btype]
    for a in range(ni):
        for b in range(nj):
            if btype[a, b] == FIELD:
                soil_thr[a, b] = 0.35 + 0.6 * _sunif(seed, 6, i_lo + a, j_lo + b)
    blk = ci * nj + cj
    B = btype.ravel()[blk]
    thr = soil_thr.ravel()[blk]

    n_big = _vnoise(xc, yc, 170.0, key + 1)
    n_mid = 0.6 * _vnoise(xc, yc, 37.0, key + 2) + 0.4 * _vnoise(xc, yc, 11.0, key + 3)
    n_fine = _vnoise(xc, yc, 2.7, key + 4)
    n_dry = _vnoise(xc, yc, 90.0, key + 5)

    f32 = np.float32
    green = np.array([76, 100, 50], f32)[:, None, None]
    dry = np.array([128, 126, 80], f32)[:, None, None]
    soil = np.array([142, 116, 88], f32)[:, None, None]
    paved = np.array([150, 148, 141], f32)[:, None, None]
    tex = (f32(0.8) + f32(0.3) * n_mid) * (f32(0.88) + f32(0.24) * n_fine)
    grass = (green + (dry - green) * (n_dry * n_dry)[None]) * tex[None]
    ws = np.clip((n_big - thr) / f32(0.07), 0, 1)
    soil_tex = (f32(0.9) + f32(0.16) * n_mid) * (f32(0.95) + f32(0.1) * n_fine)
    is_field = B == FIELD
    if is_field.any():  # ploughed / crop rows along the street grid
        soil_tex = np.where(is_field, soil_tex * (f32(0.88) + f32(0.2) * _tri(U / 9.0).astype(f32)), soil_tex)
    soil_px = soil * soil_tex[None]
    img = grass + (soil_px - grass) * ws[None]
    ind = B == INDUSTRIAL
    wp = np.where(ind, np.clip((f32(0.75) - n_big) / f32(0.05), 0, 1), f32(0))
    pav = paved * ((f32(0.9) + f32(0.14) * n_mid) * (f32(0.96) + f32(0.08) * n_fine))[None]
    img = img + (pav - img) * wp[None]
    del grass, soil_px, soil_tex, pav, ws, wp

    # --- roads: for each pixel only the nearest grid line of each axis matters
    road_tex = (f32(0.93) + f32(0.1) * n_mid) * (f32(0.96) + f32(0.08) * n_fine)
    asphalt_any = np.zeros((h, w), bool)
    walk_any = np.zeros((h, w), bool)
    grey = np.zeros((h, w), f32)
    axes = []
    for axis, lines, lo, coord, own, other, no, olo in (
        (0, ulines, i_lo, U, ci, cj, nj, j_lo),
        (1, vlines, j_lo, V, cj, ci, ni, i_lo),
    ):
        pos = np.array([ln.pos for ln in lines])
        dl = coord - pos[own]
        dr = pos[np.minimum(own + 1, len(lines) - 1)] - coord
        left = dl <= dr
        k = np.where(left, own, own + 1)
        ad = np.where(left, dl, dr).astype(f32)
        seg = np.array([[_segment(seed, axis, lo + a, olo + m) for m in range(no)] for a in range(len(lines))])
        exists = seg.ravel()[k * no + other]
        half = np.array([ln.half for ln in lines], f32)[k]
        walk_w = np.array([ln.walk for ln in lines], f32)[k]
        asphalt = (ad < half) & exists
        walk_any |= (ad >= half) & (ad < half + walk_w) & exists
        grey = np.where(asphalt, np.array([ln.grey for ln in lines], f32)[k], grey)
        asphalt_any |= asphalt
        mains = np.array([ln.main for ln in lines])
        if mains.any():
            along = V if axis == 0 else U
            centre = (ad < 0.8) & (_tri(along / 40.0) < 0.55)
            edge = np.abs(ad - (half - f32(3.0))) < f32(0.7)
            axes.append((asphalt, (centre | edge) & asphalt & mains[k]))
        else:
            axes.append((asphalt, None))
    walk_any &= ~asphalt_any
    img = np.where(walk_any[None], paved * (f32(0.97) + f32(0.1) * n_fine)[None], img)
    road = grey * road_tex
    img = np.where(asphalt_any[None], np.stack([road, road, road * f32(1.03)]), img)
    for axis in (0, 1):
        mk = axes[axis][1]
        if mk is not None:
            mk = mk & ~axes[1 - axis][0]
            img = np.where(mk[None], f32(215), img)
    del axes, asphalt_any, walk_any, grey, road, road_tex

    # --- objects of the blocks around this region
    pads, buildings, trees = [], [], []
    for i in range(i_lo, i_hi):
        for j in range(j_lo, j_hi):
            pd, bd, tr = _cell_objects(seed, i, j)
            pads += [o for o in pd if _sub(o.bbox, x0, y0, w, h)]
            buildings += [o for o in bd if _sub(o.bbox, x0, y0, w, h)]
            trees += [o for o in tr if _sub(o.bbox, x0, y0, w, h)]

    for pd in pads:
        r0, r1, c0, c1 = _sub(pd.bbox, x0, y0, w, h)
        a, b = _local(pd.rect, xc[c0:c1], yc[r0:r1])
        inside = (np.abs(a) <= pd.rect.hx) & (np.abs(b) <= pd.rect.hy)
        col = np.array(pd.color, f32)[:, None, None] * (f32(0.95) + f32(0.1) * n_fine[r0:r1, c0:c1])[None]
        if pd.stripes:
            line = (_tri(a / 8.3) > 0.86) & (np.abs(np.abs(b) - pd.rect.hy / 2) < pd.rect.hy / 2 - 3)
            col = np.where(line[None], f32(200), col)
        sub = img[:, r0:r1, c0:c1]
        sub[:] = np.where(inside[None], col, sub)

    # shadows (buildings and trees) darken the ground; roofs and canopies are drawn over them
    shade = np.zeros((h, w), bool)
    for bd in buildings:
        r0, r1, c0, c1 = _sub(bd.bbox, x0, y0, w, h)
        dx, dy = p.shadow[0] * bd.height, p.shadow[1] * bd.height
        for rc in bd.parts:
            shade[r0:r1, c0:c1] |= _rect_shadow(rc, xc[c0:c1], yc[r0:r1], dx, dy)
    for t in trees:
        r0, r1, c0, c1 = _sub(t.bbox, x0, y0, w, h)
        dx, dy = p.shadow[0] * t.height, p.shadow[1] * t.height
        px = xc[c0:c1][None, :] - t.cx
        py = yc[r0:r1][:, None] - t.cy
        tt = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0.4, 1.0)
        rr = t.r * (0.8 + 0.3 * n_fine[r0:r1, c0:c1])
        shade[r0:r1, c0:c1] |= (px - tt * dx) ** 2 + (py - tt * dy) ** 2 <= rr * rr
    img = np.where(shade[None], img * np.array([0.36, 0.38, 0.46], f32)[:, None, None], img)
    del shade

    mask = np.zeros((h, w), np.uint8)
    sunx, suny = p.sun
    for bd in buildings:
        r0, r1, c0, c1 = _sub(bd.bbox, x0, y0, w, h)
        xs, ys = xc[c0:c1], yc[r0:r1]
        base = np.array(bd.color, f32)[:, None, None]
        nf = n_fine[r0:r1, c0:c1]
        nm = n_mid[r0:r1, c0:c1]
        sub = img[:, r0:r1, c0:c1]
        for rc in bd.parts:
            a, b = _local(rc, xs, ys)
            aa, ab = np.abs(a), np.abs(b)
            inside = (aa <= rc.hx) & (ab <= rc.hy)
            if not inside.any():
                continue
            # long axis = ridge direction
            if rc.hx >= rc.hy:
                along, across, ha, hb, nvec = a, b, rc.hx, rc.hy, (-rc.st, rc.ct)
                avec = (rc.ct, rc.st)
            else:
                along, across, ha, hb, nvec = b, a, rc.hy, rc.hx, (rc.ct, rc.st)
                avec = (-rc.st, rc.ct)
            edge = np.minimum(ha - np.abs(along), hb - np.abs(across))
            lit_side = nvec[0] * sunx + nvec[1] * suny
            lit_end = avec[0] * sunx + avec[1] * suny
            if bd.roof == "flat":
                bright = (f32(0.94) + f32(0.1) * nm).astype(f32)
                bright = np.where(edge < 2.2, f32(1.12), np.where(edge < 3.6, f32(0.82), bright))
            else:
                sgn = np.sign(across).astype(f32)
                bright = f32(1.0) + f32(0.24 * lit_side) * sgn
                if bd.roof == "hip":
                    end = (ha - np.abs(along)) < (hb - np.abs(across))
                    bright = np.where(end, f32(1.0) + f32(0.24 * lit_end) * np.sign(along).astype(f32), bright)
                    ridge = (np.abs(across) < 1.0) & (np.abs(along) < ha - hb)
                else:
                    ridge = np.abs(across) < 1.0
                bright = np.where(ridge, f32(1.12), bright)
                bright = np.where(edge < 1.2, f32(0.78), bright)
            if bd.texture == "tiles":
                bright = bright * (f32(0.92) + f32(0.12) * _tri(across / 2.6).astype(f32))
            elif bd.texture == "metal":
                bright = bright * (f32(0.93) + f32(0.1) * _tri(along / 3.3).astype(f32))
            col = base * (bright * (f32(0.95) + f32(0.1) * nf))[None]
            sub[:] = np.where(inside[None], col, sub)
            mask[r0:r1, c0:c1] |= inside.astype(np.uint8)
        for hv in bd.hvac:
            a, b = _local(hv, xs, ys)
            inside = (np.abs(a) <= hv.hx) & (np.abs(b) <= hv.hy)
            sh = _rect_shadow(hv, xs, ys, p.shadow[0] * 1.2, p.shadow[1] * 1.2) & ~inside
            sub[:] = np.where(sh[None], sub * f32(0.55), sub)
            sub[:] = np.where(inside[None], f32(190) + f32(20) * nf[None], sub)

    for t in trees:
        r0, r1, c0, c1 = _sub(t.bbox, x0, y0, w, h)
        px = xc[c0:c1][None, :] - t.cx
        py = yc[r0:r1][:, None] - t.cy
        nf = n_fine[r0:r1, c0:c1]
        rr = t.r * (0.82 + 0.3 * _vnoise(xc[c0:c1], yc[r0:r1], 4.0, key + 7))
        inside = px * px + py * py <= rr * rr
        lit = np.clip((px * sunx + py * suny) / t.r, -1.0, 1.0).astype(f32)
        bright = (f32(0.85) + f32(0.3) * lit) * (f32(0.65) + f32(0.6) * nf)
        col = np.array(t.color, f32)[:, None, None] * bright[None]
        sub = img[:, r0:r1, c0:c1]
        sub[:] = np.where(inside[None], col, sub)

    img *= np.array(p.gain, f32)[:, None, None]
    return img, mask


def _nodata_mask(seed: int, xc, yc, scene_w: int, scene_h: int) -> np.ndarray:
    """True where a slanted scene edge cuts off one corner (the corner and depth depend on the seed)."""
    rng = _srng(seed, 8)
    corner = int(rng.integers(0, 4))
    fa, fb = rng.uniform(0.25, 0.5), rng.uniform(0.25, 0.5)
    dx = (scene_w - xc) if corner in (1, 2) else xc
    dy = (scene_h - yc) if corner in (2, 3) else yc
    return dx[None, :] / (fa * scene_w) + dy[:, None] / (fb * scene_h) < 1.0


def render_window(
    seed: int,
    col_off: int,
    row_off: int,
    width: int,
    height: int,
    *,
    scene_width: int | None = None,
    scene_height: int | None = None,
    nodata_border: bool = False,
    dtype: str = "uint8",
) -> tuple[np.ndarray, np.ndarray]:
    """Render one window of the scene ``seed``: image (3, height, width) and mask (height, width).

    The pixels depend only on the seed and their global position (and, with ``nodata_border``, on
    the scene size), never on how the scene is cut into windows.
    """
    if dtype not in ("uint8", "uint16"):
        raise ValueError(f"dtype must be uint8 or uint16, not {dtype!r}")
    hal = _HALO
    img, mask = _render_region(seed, col_off - hal, row_off - hal, width + 2 * hal, height + 2 * hal)
    # slight optics blur: separable [1 2 1] / 4
    img = (img[:, :, :-2] + 2 * img[:, :, 1:-1] + img[:, :, 2:]) * np.float32(0.25)
    img = (img[:, :-2, :] + 2 * img[:, 1:-1, :] + img[:, 2:, :]) * np.float32(0.25)
    mask = mask[hal:-hal, hal:-hal]
    # sensor noise: per-pixel hash of global coordinates, triangular distribution per band
    ix = np.arange(col_off, col_off + width, dtype=np.int64)
    iy = np.arange(row_off, row_off + height, dtype=np.int64)
    hsh = _ahash(ix[None, :], iy[:, None], _shash(seed, 100))
    scale = np.float32(NOISE_SIGMA / math.sqrt(2.0 / 12.0) / 1024.0)
    m10 = np.uint64(1023)
    for band in range(3):
        u1 = ((hsh >> np.uint64(20 * band)) & m10).astype(np.float32)
        u2 = ((hsh >> np.uint64(20 * band + 10)) & m10).astype(np.float32)
        img[band] += (u1 + u2 - np.float32(1023.0)) * scale
    if dtype == "uint16":
        out = np.clip(np.rint(img * np.float32(UINT16_SCALE)), 1, 4095).astype(np.uint16)
    else:
        out = np.clip(np.rint(img), 1, 255).astype(np.uint8)
    if nodata_border:
        sw = scene_width if scene_width is not None else col_off + width
        sh = scene_height if scene_height is not None else row_off + height
        xc = col_off + np.arange(width, dtype=np.float64) + 0.5
        yc = row_off + np.arange(height, dtype=np.float64) + 0.5
        nd = _nodata_mask(seed, xc, yc, sw, sh)
        out[:, nd] = 0
        mask[nd] = 0
    return out, np.ascontiguousarray(mask)


# ----------------------------------------------------------------------------------------------
# Profiles and writing
# ----------------------------------------------------------------------------------------------
def _transform(origin, pixel_size):
    from affine import Affine

    return Affine(float(pixel_size), 0.0, float(origin[0]), 0.0, -float(pixel_size), float(origin[1]))


def scene_profile(
    width: int,
    height: int,
    *,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
) -> dict:
    """rasterio creation profile of a synthetic scene (tiled 256, DEFLATE + predictor 2)."""
    from rasterio.crs import CRS

    return dict(
        driver="GTiff",
        width=int(width),
        height=int(height),
        count=3,
        dtype=dtype,
        crs=CRS.from_user_input(crs),
        transform=_transform(origin, pixel_size),
        nodata=0 if nodata_border else None,
        tiled=True,
        blockxsize=256,
        blockysize=256,
        compress="deflate",
        predictor=2,
        interleave="pixel",
        photometric="RGB" if dtype == "uint8" else "MINISBLACK",
        BIGTIFF="IF_SAFER",
    )


def mask_profile(scene: dict) -> dict:
    """Profile of the building mask that goes with ``scene`` (uint8 0/1 with a colour table)."""
    prof = dict(scene)
    prof.update(count=1, dtype="uint8", nodata=None, photometric="PALETTE", interleave="band")
    return prof


MASK_COLORMAP = {0: (0, 0, 0, 0), 1: (255, 0, 0, 255)}


def generate_scene(
    width: int,
    height: int,
    seed: int,
    *,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """A whole scene in memory: image (3, H, W) uint8/uint16, mask (H, W) uint8 (1 = building), profile.

    For large scenes use :func:`write_scene`, which never holds the whole scene.
    """
    _check_size(width, height)
    img, mask = render_window(
        seed, 0, 0, width, height, scene_width=width, scene_height=height, nodata_border=nodata_border, dtype=dtype
    )
    prof = scene_profile(width, height, pixel_size=pixel_size, origin=origin, crs=crs, dtype=dtype, nodata_border=nodata_border)
    return img, mask, prof


def _check_size(width: int, height: int) -> None:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"scene size must be positive, got {width}x{height}")


def _remove_sidecars(path: Path) -> None:
    for side in (path.with_name(path.name + ".aux.xml"), path.with_suffix(".qml")):
        if side.exists():
            side.unlink()


def write_scene(
    path_image: str | os.PathLike,
    path_mask: str | os.PathLike,
    width: int,
    height: int,
    seed: int,
    *,
    block: int = 1024,
    pixel_size: float = 0.3,
    origin: tuple[float, float] = DEFAULT_ORIGIN,
    crs: str = DEFAULT_CRS,
    dtype: str = "uint8",
    nodata_border: bool = False,
    overwrite: bool = False,
) -> dict:
    """Generate a scene window by window and write it and its mask as tiled, compressed GeoTIFFs.

    Memory is bounded by ``block`` (a few hundred MB at most for block=1024), not by the scene
    size. Both files are written under temporary names in their destination folder and renamed at
    the end. Raises :class:`~segxai_cli.errors.OutputError` if an output exists and ``overwrite``
    is false or a destination folder is missing. Returns a summary (paths, size, building fraction).
    """
    import rasterio
    from rasterio.windows import Window

    _check_size(width, height)
    if block < 1:
        raise ValueError("block must be positive")
    pimg, pmask = Path(path_image), Path(path_mask)
    if pimg.resolve() == pmask.resolve():
        raise OutputError(f"{pimg}: image and mask paths are the same")
    for pth in (pimg, pmask):
        if not pth.parent.is_dir():
            raise OutputError(f"{pth}: destination folder {pth.parent} does not exist")
        if pth.exists() and not overwrite:
            raise OutputError(f"{pth} already exists (use --overwrite to replace it)")
    prof = scene_profile(width, height, pixel_size=pixel_size, origin=origin, crs=crs, dtype=dtype, nodata_border=nodata_border)
    mprof = mask_profile(prof)
    tag = uuid.uuid4().hex[:8]
    tmp_img = pimg.with_name(f".{pimg.name}.{tag}.tmp")
    tmp_mask = pmask.with_name(f".{pmask.name}.{tag}.tmp")
    n_building = 0
    n_valid = 0
    tags = dict(
        generator="segxai_cli.synthetic",
        seed=str(seed),
        content="synthetic aerial scene: buildings, shadows, roads, trees, grass, soil, paving; 0.3 m pixels",
    )
    try:
        with rasterio.open(tmp_img, "w", **prof) as dimg, rasterio.open(tmp_mask, "w", **mprof) as dmask:
            for b, name in enumerate(BAND_NAMES, start=1):
                dimg.set_band_description(b, name)
            dimg.update_tags(**tags)
            dmask.set_band_description(1, "building")
            dmask.update_tags(**tags, classes="0=background,1=building")
            dmask.write_colormap(1, MASK_COLORMAP)
            for r in range(0, height, block):
                for c in range(0, width, block):
                    w, h = min(block, width - c), min(block, height - r)
                    img, mask = render_window(
                        seed, c, r, w, h, scene_width=width, scene_height=height, nodata_border=nodata_border, dtype=dtype
                    )
                    win = Window(c, r, w, h)
                    dimg.write(img, window=win)
                    dmask.write(mask, 1, window=win)
                    n_building += int(mask.sum(dtype=np.int64))
                    n_valid += int(np.count_nonzero(img[0])) if nodata_border else w * h
        for pth in (pimg, pmask):
            _remove_sidecars(pth)
        os.replace(tmp_img, pimg)
        os.replace(tmp_mask, pmask)
    finally:
        for tmp in (tmp_img, tmp_mask):
            if tmp.exists():
                tmp.unlink()
            aux = tmp.with_name(tmp.name + ".aux.xml")
            if aux.exists():
                aux.unlink()
    return dict(
        image=str(pimg),
        mask=str(pmask),
        width=int(width),
        height=int(height),
        seed=int(seed),
        building_fraction=n_building / max(1, n_valid),
    )

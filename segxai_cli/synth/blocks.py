"""The objects of one block of the street grid: buildings, trees, paved pads.

Each block ``(i, j)`` is filled by its own random generator, seeded from ``hash(seed, i, j)``, with a
fixed order of draws, so a block's objects do not depend on which window asks for them (they are
cached per block). Objects are placed in the grid frame (u, v) inside the block's buildable area
(the block between the street lines minus roads, sidewalks and a setback) and stored in image pixel
coordinates with a bounding box that includes their shadow: a renderer only rasterises the objects
whose box meets its window. Objects never leave the block's neighbourhood (one block pitch), which
is what lets :mod:`.render` look at a fixed number of blocks around a window.

How a block is filled depends on its type (:mod:`.layout`): parcels with houses, driveways and
garden trees (residential); halls with rooftop units, parking lots (industrial); tree clusters and
now and then a pavilion (park); a farm yard and a hedge (field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from segxai_cli.synth.layout import FIELD, INDUSTRIAL, PARK, RESIDENTIAL, _block_type, _line, _params
from segxai_cli.synth.noise import _srng

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
            self._hvac(b, rects[-1])
        dx, dy = self.p.shadow[0] * height, self.p.shadow[1] * height
        b.bbox = _bbox([q for r in rects for q in r.corners() + r.corners(dx, dy)])
        self.buildings.append(b)
        return (cu + k * umin, cu + k * umax, cv + k * vmin, cv + k * vmax)

    def _hvac(self, b: _Building, main: _Rect) -> None:
        """Rooftop units on the main part of a flat roof (up to four, kept off the roof edge)."""
        rng = self.rng
        for _ in range(int(rng.integers(0, 5))):
            ex, ey = rng.uniform(3, 7), rng.uniform(3, 7)
            if main.hx < ex + 8 or main.hy < ey + 8:
                break
            a = rng.uniform(-(main.hx - ex - 6), main.hx - ex - 6)
            bb = rng.uniform(-(main.hy - ey - 6), main.hy - ey - 6)
            b.hvac.append(
                _Rect(main.cx + a * main.ct - bb * main.st, main.cy + a * main.st + bb * main.ct, main.ct, main.st, ex, ey)
            )

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
    _FILL[kind](cb, (u0, u1, v0, v1), setback)
    return tuple(cb.pads), tuple(cb.buildings), tuple(cb.trees)


def _fill_residential(cb: _CellBuilder, area, setback: float) -> None:
    """Rows of parcels, each with a house (most of them), maybe a driveway or terrace, garden trees."""
    rng = cb.rng
    u0, u1, v0, v1 = area
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


def _fill_industrial(cb: _CellBuilder, area, setback: float) -> None:
    """One to three halls (or parking lots) side by side along the longer side, a few trees."""
    rng = cb.rng
    u0, u1, v0, v1 = area
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


def _fill_park(cb: _CellBuilder, area, setback: float) -> None:
    """Now and then a pavilion; clusters of trees."""
    rng = cb.rng
    u0, u1, v0, v1 = area
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


def _fill_field(cb: _CellBuilder, area, setback: float) -> None:
    """A farm yard in a corner, a hedge of trees along one edge."""
    rng = cb.rng
    u0, u1, v0, v1 = area
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


_FILL = {RESIDENTIAL: _fill_residential, INDUSTRIAL: _fill_industrial, PARK: _fill_park, FIELD: _fill_field}

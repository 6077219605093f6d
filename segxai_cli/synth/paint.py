"""Painting a region of a synthetic scene, layer by layer, in float 8-bit units.

The renderer (:mod:`.render`) asks for a region one pixel larger than its window; this module
looks up the street lines and the blocks around the region (:mod:`.layout`, :mod:`.blocks`),
rasterises only the objects whose bounding box meets it, and takes every texture from value noise
of *global* pixel coordinates (:mod:`.noise`). So a pixel does not depend on the region it is
painted in, and windows join seamlessly.

Layers, in this order, each one a function: ground (grass, soil, paving, crops per block type),
roads (asphalt, sidewalks, lane markings), paved pads, shadows of buildings and trees, roofs (and
the building mask), tree canopies; finally the per-seed colour balance. The arithmetic is kept in a
fixed order and in float32 where it was: the output is compared byte for byte with the sample
scenes, and any reordering changes the last bit of some pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from segxai_cli.synth.blocks import _Building, _cell_objects, _Pad, _Rect, _Tree
from segxai_cli.synth.layout import FIELD, INDUSTRIAL, _block_type, _line, _Line, _params, _Params, _segment
from segxai_cli.synth.noise import _shash, _sunif, _tri, _vnoise

f32 = np.float32
_GREEN = np.array([76, 100, 50], f32)[:, None, None]  # ground colours, 8-bit units (3, 1, 1)
_DRY = np.array([128, 126, 80], f32)[:, None, None]
_SOIL = np.array([142, 116, 88], f32)[:, None, None]
_PAVED = np.array([150, 148, 141], f32)[:, None, None]


# ----------------------------------------------------------------------------------------------
# Geometry of objects on the pixel grid
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


# ----------------------------------------------------------------------------------------------
# The region: coordinates, nearby grid lines, noise fields shared by all layers
# ----------------------------------------------------------------------------------------------
@dataclass
class _Region:
    seed: int
    p: _Params
    key: int  # texture noise key of the seed
    x0: int  # upper-left pixel (global) and size
    y0: int
    w: int
    h: int
    xc: np.ndarray  # global pixel-centre coordinates of the columns / rows
    yc: np.ndarray
    U: np.ndarray  # grid-frame coordinates of every pixel (h, w)
    V: np.ndarray
    i_lo: int  # blocks around the region: i_lo <= i < i_hi, j_lo <= j < j_hi
    i_hi: int
    j_lo: int
    j_hi: int
    ulines: list[_Line]  # grid lines i_lo..i_hi, j_lo..j_hi
    vlines: list[_Line]
    ci: np.ndarray  # per pixel: index into ulines / vlines of the line at or before it
    cj: np.ndarray
    n_big: np.ndarray  # value noise at several scales (h, w), float32 in [0, 1]
    n_mid: np.ndarray
    n_fine: np.ndarray
    n_dry: np.ndarray


def _region(seed: int, x0: int, y0: int, w: int, h: int) -> _Region:
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

    n_big = _vnoise(xc, yc, 170.0, key + 1)
    n_mid = 0.6 * _vnoise(xc, yc, 37.0, key + 2) + 0.4 * _vnoise(xc, yc, 11.0, key + 3)
    n_fine = _vnoise(xc, yc, 2.7, key + 4)
    n_dry = _vnoise(xc, yc, 90.0, key + 5)
    return _Region(
        seed=seed, p=p, key=key, x0=x0, y0=y0, w=w, h=h, xc=xc, yc=yc, U=U, V=V,
        i_lo=i_lo, i_hi=i_hi, j_lo=j_lo, j_hi=j_hi, ulines=ulines, vlines=vlines, ci=ci, cj=cj,
        n_big=n_big, n_mid=n_mid, n_fine=n_fine, n_dry=n_dry,
    )


# ----------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------
def _paint_ground(rg: _Region) -> np.ndarray:
    """Grass, bare soil, paving, crops; per-block parameters looked up per pixel. Returns (3, h, w)."""
    seed, i_lo, j_lo = rg.seed, rg.i_lo, rg.j_lo
    ni, nj = len(rg.ulines), len(rg.vlines)
    btype = np.array([[_block_type(seed, i, j) for j in range(j_lo, rg.j_hi + 1)] for i in range(i_lo, rg.i_hi + 1)])
    soil_thr = np.array([0.70, 0.62, 0.80, 0.0], dtype=np.float32)[btype]
    for a in range(ni):
        for b in range(nj):
            if btype[a, b] == FIELD:
                soil_thr[a, b] = 0.35 + 0.6 * _sunif(seed, 6, i_lo + a, j_lo + b)
    blk = rg.ci * nj + rg.cj
    B = btype.ravel()[blk]
    thr = soil_thr.ravel()[blk]

    n_big, n_mid, n_fine, n_dry = rg.n_big, rg.n_mid, rg.n_fine, rg.n_dry
    tex = (f32(0.8) + f32(0.3) * n_mid) * (f32(0.88) + f32(0.24) * n_fine)
    grass = (_GREEN + (_DRY - _GREEN) * (n_dry * n_dry)[None]) * tex[None]
    ws = np.clip((n_big - thr) / f32(0.07), 0, 1)
    soil_tex = (f32(0.9) + f32(0.16) * n_mid) * (f32(0.95) + f32(0.1) * n_fine)
    is_field = B == FIELD
    if is_field.any():  # ploughed / crop rows along the street grid
        soil_tex = np.where(is_field, soil_tex * (f32(0.88) + f32(0.2) * _tri(rg.U / 9.0).astype(f32)), soil_tex)
    soil_px = _SOIL * soil_tex[None]
    img = grass + (soil_px - grass) * ws[None]
    ind = B == INDUSTRIAL
    wp = np.where(ind, np.clip((f32(0.75) - n_big) / f32(0.05), 0, 1), f32(0))
    pav = _PAVED * ((f32(0.9) + f32(0.14) * n_mid) * (f32(0.96) + f32(0.08) * n_fine))[None]
    return img + (pav - img) * wp[None]


def _road_axis(rg: _Region, axis: int):
    """Roads on the grid lines of one axis: asphalt, sidewalk, asphalt grey, lane markings (or None).

    For each pixel only the nearest grid line of the axis matters.
    """
    if axis == 0:
        lines, lo, coord, own, other, no, olo, along = rg.ulines, rg.i_lo, rg.U, rg.ci, rg.cj, len(rg.vlines), rg.j_lo, rg.V
    else:
        lines, lo, coord, own, other, no, olo, along = rg.vlines, rg.j_lo, rg.V, rg.cj, rg.ci, len(rg.ulines), rg.i_lo, rg.U
    pos = np.array([ln.pos for ln in lines])
    dl = coord - pos[own]
    dr = pos[np.minimum(own + 1, len(lines) - 1)] - coord
    left = dl <= dr
    k = np.where(left, own, own + 1)
    ad = np.where(left, dl, dr).astype(f32)
    seg = np.array([[_segment(rg.seed, axis, lo + a, olo + m) for m in range(no)] for a in range(len(lines))])
    exists = seg.ravel()[k * no + other]
    half = np.array([ln.half for ln in lines], f32)[k]
    walk_w = np.array([ln.walk for ln in lines], f32)[k]
    asphalt = (ad < half) & exists
    walk = (ad >= half) & (ad < half + walk_w) & exists
    grey = np.array([ln.grey for ln in lines], f32)[k]
    mains = np.array([ln.main for ln in lines])
    if not mains.any():
        return asphalt, walk, grey, None
    centre = (ad < 0.8) & (_tri(along / 40.0) < 0.55)
    edge = np.abs(ad - (half - f32(3.0))) < f32(0.7)
    return asphalt, walk, grey, (centre | edge) & asphalt & mains[k]


def _paint_roads(rg: _Region, img: np.ndarray) -> np.ndarray:
    """Asphalt and sidewalks of both axes; lane markings except where the other axis's road crosses."""
    road_tex = (f32(0.93) + f32(0.1) * rg.n_mid) * (f32(0.96) + f32(0.08) * rg.n_fine)
    asphalt_any = np.zeros((rg.h, rg.w), bool)
    walk_any = np.zeros((rg.h, rg.w), bool)
    grey = np.zeros((rg.h, rg.w), f32)
    axes = []
    for axis in (0, 1):
        asphalt, walk, line_grey, marks = _road_axis(rg, axis)
        walk_any |= walk
        grey = np.where(asphalt, line_grey, grey)
        asphalt_any |= asphalt
        axes.append((asphalt, marks))
    walk_any &= ~asphalt_any
    img = np.where(walk_any[None], _PAVED * (f32(0.97) + f32(0.1) * rg.n_fine)[None], img)
    road = grey * road_tex
    img = np.where(asphalt_any[None], np.stack([road, road, road * f32(1.03)]), img)
    for axis in (0, 1):
        mk = axes[axis][1]
        if mk is not None:
            mk = mk & ~axes[1 - axis][0]
            img = np.where(mk[None], f32(215), img)
    return img


def _objects_in(rg: _Region) -> tuple[list[_Pad], list[_Building], list[_Tree]]:
    """Objects of the blocks around the region whose bounding box meets it."""
    x0, y0, w, h = rg.x0, rg.y0, rg.w, rg.h
    pads, buildings, trees = [], [], []
    for i in range(rg.i_lo, rg.i_hi):
        for j in range(rg.j_lo, rg.j_hi):
            pd, bd, tr = _cell_objects(rg.seed, i, j)
            pads += [o for o in pd if _sub(o.bbox, x0, y0, w, h)]
            buildings += [o for o in bd if _sub(o.bbox, x0, y0, w, h)]
            trees += [o for o in tr if _sub(o.bbox, x0, y0, w, h)]
    return pads, buildings, trees


def _paint_pads(rg: _Region, img: np.ndarray, pads: list[_Pad]) -> None:
    """Driveways, terraces and parking lots (with painted bays), in place."""
    xc, yc, n_fine = rg.xc, rg.yc, rg.n_fine
    for pd in pads:
        r0, r1, c0, c1 = _sub(pd.bbox, rg.x0, rg.y0, rg.w, rg.h)
        a, b = _local(pd.rect, xc[c0:c1], yc[r0:r1])
        inside = (np.abs(a) <= pd.rect.hx) & (np.abs(b) <= pd.rect.hy)
        col = np.array(pd.color, f32)[:, None, None] * (f32(0.95) + f32(0.1) * n_fine[r0:r1, c0:c1])[None]
        if pd.stripes:
            line = (_tri(a / 8.3) > 0.86) & (np.abs(np.abs(b) - pd.rect.hy / 2) < pd.rect.hy / 2 - 3)
            col = np.where(line[None], f32(200), col)
        sub = img[:, r0:r1, c0:c1]
        sub[:] = np.where(inside[None], col, sub)


def _paint_shadows(rg: _Region, img: np.ndarray, buildings: list[_Building], trees: list[_Tree]) -> np.ndarray:
    """Shadows of buildings and trees darken the ground; roofs and canopies are drawn over them later."""
    p, xc, yc, x0, y0, w, h = rg.p, rg.xc, rg.yc, rg.x0, rg.y0, rg.w, rg.h
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
        rr = t.r * (0.8 + 0.3 * rg.n_fine[r0:r1, c0:c1])
        shade[r0:r1, c0:c1] |= (px - tt * dx) ** 2 + (py - tt * dy) ** 2 <= rr * rr
    return np.where(shade[None], img * np.array([0.36, 0.38, 0.46], f32)[:, None, None], img)


def _roof_brightness(bd: _Building, rc: _Rect, a, b, nm, sun: tuple[float, float]) -> np.ndarray:
    """Shading of one roof part from its shape (flat with parapet, gable, hip), the sun and texture."""
    sunx, suny = sun
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
    return bright


def _paint_buildings(rg: _Region, img: np.ndarray, buildings: list[_Building]) -> np.ndarray:
    """Roofs and rooftop units, in place; returns the building mask (h, w) uint8 (1 = roof)."""
    p, xc, yc = rg.p, rg.xc, rg.yc
    mask = np.zeros((rg.h, rg.w), np.uint8)
    for bd in buildings:
        r0, r1, c0, c1 = _sub(bd.bbox, rg.x0, rg.y0, rg.w, rg.h)
        xs, ys = xc[c0:c1], yc[r0:r1]
        base = np.array(bd.color, f32)[:, None, None]
        nf = rg.n_fine[r0:r1, c0:c1]
        nm = rg.n_mid[r0:r1, c0:c1]
        sub = img[:, r0:r1, c0:c1]
        for rc in bd.parts:
            a, b = _local(rc, xs, ys)
            inside = (np.abs(a) <= rc.hx) & (np.abs(b) <= rc.hy)
            if not inside.any():
                continue
            bright = _roof_brightness(bd, rc, a, b, nm, p.sun)
            col = base * (bright * (f32(0.95) + f32(0.1) * nf))[None]
            sub[:] = np.where(inside[None], col, sub)
            mask[r0:r1, c0:c1] |= inside.astype(np.uint8)
        for hv in bd.hvac:
            a, b = _local(hv, xs, ys)
            inside = (np.abs(a) <= hv.hx) & (np.abs(b) <= hv.hy)
            sh = _rect_shadow(hv, xs, ys, p.shadow[0] * 1.2, p.shadow[1] * 1.2) & ~inside
            sub[:] = np.where(sh[None], sub * f32(0.55), sub)
            sub[:] = np.where(inside[None], f32(190) + f32(20) * nf[None], sub)
    return mask


def _paint_trees(rg: _Region, img: np.ndarray, trees: list[_Tree]) -> None:
    """Round canopies with a ragged edge, lit on the sun side, in place (they may overhang roofs)."""
    xc, yc = rg.xc, rg.yc
    sunx, suny = rg.p.sun
    for t in trees:
        r0, r1, c0, c1 = _sub(t.bbox, rg.x0, rg.y0, rg.w, rg.h)
        px = xc[c0:c1][None, :] - t.cx
        py = yc[r0:r1][:, None] - t.cy
        nf = rg.n_fine[r0:r1, c0:c1]
        rr = t.r * (0.82 + 0.3 * _vnoise(xc[c0:c1], yc[r0:r1], 4.0, rg.key + 7))
        inside = px * px + py * py <= rr * rr
        lit = np.clip((px * sunx + py * suny) / t.r, -1.0, 1.0).astype(f32)
        bright = (f32(0.85) + f32(0.3) * lit) * (f32(0.65) + f32(0.6) * nf)
        col = np.array(t.color, f32)[:, None, None] * bright[None]
        sub = img[:, r0:r1, c0:c1]
        sub[:] = np.where(inside[None], col, sub)


def _render_region(seed: int, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Float RGB (3, h, w) in 8-bit units (before blur and sensor noise) and mask (h, w)."""
    rg = _region(seed, x0, y0, w, h)
    img = _paint_ground(rg)
    img = _paint_roads(rg, img)
    pads, buildings, trees = _objects_in(rg)
    _paint_pads(rg, img, pads)
    img = _paint_shadows(rg, img, buildings, trees)
    mask = _paint_buildings(rg, img, buildings)
    _paint_trees(rg, img, trees)
    img *= np.array(rg.p.gain, f32)[:, None, None]
    return img, mask

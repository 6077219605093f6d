"""Hashes and value noise: the only source of randomness of the synthetic scenes.

A scene must render the same pixels whatever window it is cut into, on any machine. So nothing here
keeps state: every random number is a hash of integers (seed, a purpose key, lattice or block
indices), computed with splitmix64-style mixing in exact 64-bit integer arithmetic, and the textures
are value noise on a lattice of such hashes evaluated at *global* pixel coordinates.

* scalar hashes (:func:`_shash`, :func:`_sunif`, :func:`_srng`) seed the layout: per-seed parameters,
  street lines, block types, the generator that places a block's objects;
* vectorised hashes (:func:`_ahash`, :func:`_aunif`) and :func:`_vnoise` make textures and sensor
  noise for whole windows at once.

Pure numpy; :func:`_tri` avoids transcendental functions so that the patterns are bit-stable.
"""

from __future__ import annotations

import numpy as np

# Scalar hashes (layout): Python integers, exact modulo 2**64.
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


# Vectorised hashes (textures, sensor noise): uint64 arrays, wrapping multiplication.
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

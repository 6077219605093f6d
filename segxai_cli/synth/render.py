"""Rendering one window of a synthetic scene: what a sensor adds to the painted ground truth.

A window's pixels are a pure function of ``(seed, global pixel coordinates)``, never of how the scene
is cut into windows. The slight optics blur needs the neighbours of the edge pixels, so the region
painted (:mod:`.paint`) is one pixel larger than the window on each side (the halo) and the blur
shrinks it back; sensor noise is a hash of global coordinates. Windows therefore join seamlessly
whatever the block size (tested). Then quantisation to uint8, or to 12-bit-like uint16, keeps 0
free for nodata, which the optional slanted border uses.
"""

from __future__ import annotations

import math

import numpy as np

from segxai_cli.synth.noise import _ahash, _shash, _srng
from segxai_cli.synth.paint import _render_region

UINT16_SCALE = 16  # uint16 scenes are 12-bit-like: the 8-bit radiometry x 16 (0..4080)
NOISE_SIGMA = 2.5  # sensor noise, in 8-bit digital numbers
_HALO = 1  # blur radius


def _blur(img: np.ndarray) -> np.ndarray:
    """Slight optics blur: separable [1 2 1] / 4; the result is smaller by the halo on each side."""
    img = (img[:, :, :-2] + 2 * img[:, :, 1:-1] + img[:, :, 2:]) * np.float32(0.25)
    return (img[:, :-2, :] + 2 * img[:, 1:-1, :] + img[:, 2:, :]) * np.float32(0.25)


def _add_sensor_noise(img: np.ndarray, seed: int, col_off: int, row_off: int) -> None:
    """Per-pixel hash of global coordinates, triangular distribution per band, in place."""
    height, width = img.shape[1:]
    ix = np.arange(col_off, col_off + width, dtype=np.int64)
    iy = np.arange(row_off, row_off + height, dtype=np.int64)
    hsh = _ahash(ix[None, :], iy[:, None], _shash(seed, 100))
    scale = np.float32(NOISE_SIGMA / math.sqrt(2.0 / 12.0) / 1024.0)
    m10 = np.uint64(1023)
    for band in range(3):
        u1 = ((hsh >> np.uint64(20 * band)) & m10).astype(np.float32)
        u2 = ((hsh >> np.uint64(20 * band + 10)) & m10).astype(np.float32)
        img[band] += (u1 + u2 - np.float32(1023.0)) * scale


def _quantise(img: np.ndarray, dtype: str) -> np.ndarray:
    """Round to uint8 (1..255) or 12-bit-like uint16 (1..4095); 0 is left for nodata."""
    if dtype == "uint16":
        return np.clip(np.rint(img * np.float32(UINT16_SCALE)), 1, 4095).astype(np.uint16)
    return np.clip(np.rint(img), 1, 255).astype(np.uint8)


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
    img = _blur(img)
    mask = mask[hal:-hal, hal:-hal]
    _add_sensor_noise(img, seed, col_off, row_off)
    out = _quantise(img, dtype)
    if nodata_border:
        sw = scene_width if scene_width is not None else col_off + width
        sh = scene_height if scene_height is not None else row_off + height
        xc = col_off + np.arange(width, dtype=np.float64) + 0.5
        yc = row_off + np.arange(height, dtype=np.float64) + 0.5
        nd = _nodata_mask(seed, xc, yc, sw, sh)
        out[:, nd] = 0
        mask[nd] = 0
    return out, np.ascontiguousarray(mask)

"""Blending overlapping windows without seams, and the on-device strip accumulator.

Weights
-------
Each window's output is weighted by a separable raised-cosine (Hann) profile and the stitched map
is ``sum(w * map) / sum(w)``. Along each axis the profile is 1 in the middle and ramps with a
half-cosine over exactly the pixels the window shares with its neighbour on that side; two
neighbouring ramps then sum to exactly 1 (a partition of unity), so a constant map stitches to the
same constant and tile-to-tile differences are blended smoothly over the whole overlap. A side that
touches the true scene border has no neighbour and gets no ramp: border pixels are never faded.
The ramps are strictly positive, so ``sum(w) > 0`` wherever a window was computed.

Accumulator
-----------
:class:`StripAccumulator` keeps ``sum(w * value)`` and ``sum(w)`` only for the band of scene rows
that windows can still touch (at most ``tile + block`` rows, whatever the scene size), on the
compute device. Windows arrive in row-major grid order; when the grid moves to the next window row
every scene row above that row's top is final, and the finished rows — a multiple of the output
block height, so that each compressed GeoTIFF block is written exactly once — are handed out as a
:class:`Strip`. Memory does not grow with the scene height; nothing leaves the device before a
strip is finished.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

import torch


def ramp(n: int) -> torch.Tensor:
    """Half-cosine ramp of ``n`` samples strictly inside (0, 1), rising; ``ramp(n) + ramp(n).flip(0) == 1``."""
    i = torch.arange(n, dtype=torch.float64)
    return (0.5 - 0.5 * torch.cos(math.pi * (i + 0.5) / n)).float()


def axis_profile(length: int, left: int, right: int) -> torch.Tensor:
    """1-D weight of a window of ``length`` px sharing ``left``/``right`` px with its neighbours.

    ``left == 0`` (or ``right == 0``) means that side is the scene border: no fade there.
    """
    w = torch.ones(length, dtype=torch.float32)
    if left > 0:
        left = min(left, length)
        w[:left] *= ramp(left)
    if right > 0:
        right = min(right, length)
        w[length - right:] *= ramp(right).flip(0)
    return w


def axis_profiles(starts: Sequence[int], tile: int, length: int) -> list[torch.Tensor]:
    """Profiles for every window along one axis of a grid (window ``k`` spans ``starts[k]..+tile``).

    The overlap with each neighbour is computed from the actual starts, so the edge-snapped last
    window (which overlaps its neighbour more than the others do) still blends to a partition of unity.
    """
    out = []
    n = len(starts)
    for k, s in enumerate(starts):
        size = min(tile, length - s)
        left = (starts[k - 1] + tile - s) if k > 0 else 0
        right = (s + tile - starts[k + 1]) if k < n - 1 else 0
        out.append(axis_profile(size, max(left, 0), max(right, 0)))
    return out


class BlendWeights:
    """2-D weights for the windows of a :class:`~segxai_cli.tiling.grid.TileGrid`, cached on a device."""

    def __init__(self, rows: Sequence[int], cols: Sequence[int], tile: int, height: int, width: int,
                 device: torch.device | str = "cpu", flat: bool = False) -> None:
        self.rows = list(rows)
        self.cols = list(cols)
        self.flat = flat
        self._ry = {r: p.to(device) for r, p in zip(self.rows, axis_profiles(self.rows, tile, height))}
        self._cx = {c: p.to(device) for c, p in zip(self.cols, axis_profiles(self.cols, tile, width))}

    def window(self, row_off: int, col_off: int) -> torch.Tensor:
        """(h, w) weights of the window at (row_off, col_off)."""
        wy, wx = self._ry[row_off], self._cx[col_off]
        if self.flat:
            return torch.ones(wy.numel(), wx.numel(), device=wy.device)
        return wy[:, None] * wx[None, :]


@dataclass
class Strip:
    """Finished scene rows ``[row0, row0 + height)``, full width, still on the device.

    ``sums`` (C, h, W): blended values (``sum(w*v)/sum(w)``, 0 where no window was computed);
    ``weight`` (h, W): the summed weight (0 = not computed); ``valid`` (h, W) bool: input validity.
    """

    row0: int
    sums: torch.Tensor
    weight: torch.Tensor
    valid: torch.Tensor
    region: Optional[torch.Tensor] = None  # (h, W) bool when the accumulator tracks a region

    @property
    def height(self) -> int:
        return int(self.weight.shape[0])

    @property
    def computed(self) -> torch.Tensor:
        return self.weight > 0

    def crop(self, y0: int, y1: int) -> Optional["Strip"]:
        """The part of this strip within scene rows ``[y0, y1)`` (None if they do not meet)."""
        a, b = max(y0, self.row0), min(y1, self.row0 + self.height)
        if a >= b:
            return None
        if (a, b) == (self.row0, self.row0 + self.height):
            return self
        i, j = a - self.row0, b - self.row0
        return Strip(a, self.sums[:, i:j], self.weight[i:j], self.valid[i:j],
                     self.region[i:j] if self.region is not None else None)


class StripAccumulator:
    """Blend windows into a rolling band of rows and hand out finished, block-aligned strips.

    ``channels`` values per pixel are accumulated (e.g. one per CAM method plus class probabilities).
    Call :meth:`add` for every computed window in row-major grid order, :meth:`mark_valid` for the
    validity of every window (computed or skipped), :meth:`mark_region` (with ``track_region``) for
    the pixels of the explained region, :meth:`advance` with the top row of the next window row (it
    returns the strips now final), and :meth:`finish` at the end.
    """

    def __init__(self, width: int, height: int, channels: int, tile: int, block: int = 256,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 track_region: bool = False, start: int = 0) -> None:
        self.width = width
        self.height = height
        self.channels = channels
        self.block = block
        self.device = torch.device(device)
        # Rows pending output span less than one block above the current window row plus one tile.
        # ``start``: the first scene row (a block of a split scene); the rows end at ``height``.
        self.rows = min(height - start, tile + block)
        self.sums = torch.zeros(channels, self.rows, width, device=self.device, dtype=dtype)
        self.weight = torch.zeros(self.rows, width, device=self.device, dtype=dtype)
        self.valid = torch.zeros(self.rows, width, device=self.device, dtype=torch.bool)
        self.region = torch.zeros_like(self.valid) if track_region else None
        self.row0 = start  # scene row of buffer row 0 (block-aligned after the first strip)

    def _local(self, row_off: int, h: int) -> int:
        y = row_off - self.row0
        if y < 0 or y + h > self.rows:
            raise RuntimeError(
                f"window rows {row_off}..{row_off + h} outside the accumulator band "
                f"{self.row0}..{self.row0 + self.rows}: windows must come in row-major grid order"
            )
        return y

    def add(self, row_off: int, col_off: int, values: torch.Tensor, weight: torch.Tensor) -> None:
        """Accumulate ``values`` (C, h, w) with ``weight`` (h, w) at the window's position."""
        h, w = weight.shape
        y = self._local(row_off, h)
        self.sums[:, y:y + h, col_off:col_off + w].add_(values * weight)
        self.weight[y:y + h, col_off:col_off + w].add_(weight)

    def mark_valid(self, row_off: int, col_off: int, valid: torch.Tensor) -> None:
        h, w = valid.shape
        y = self._local(row_off, h)
        self.valid[y:y + h, col_off:col_off + w] |= valid.to(self.device)

    def mark_region(self, row_off: int, col_off: int, region: torch.Tensor) -> None:
        h, w = region.shape
        y = self._local(row_off, h)
        self.region[y:y + h, col_off:col_off + w] |= region.to(self.device)

    def advance(self, next_row_off: int) -> list[Strip]:
        """Windows from now on start at or below ``next_row_off``: emit the finished, aligned rows."""
        end = (next_row_off // self.block) * self.block
        return self._emit(end)

    def finish(self) -> list[Strip]:
        return self._emit(self.height)

    def _emit(self, end: int) -> list[Strip]:
        end = min(end, self.height)
        n = end - self.row0
        if n <= 0:
            return []
        w = self.weight[:n]
        denom = torch.where(w > 0, w, torch.ones_like(w))
        region = self.region[:n].clone() if self.region is not None else None
        strip = Strip(self.row0, self.sums[:, :n] / denom, w.clone(), self.valid[:n].clone(), region)
        # Shift the band up by n rows (n <= rows) and clear what comes in at the bottom.
        keep = self.rows - n
        masks = [self.valid] + ([self.region] if self.region is not None else [])
        if keep > 0:
            self.sums[:, :keep] = self.sums[:, n:].clone()
            self.weight[:keep] = self.weight[n:].clone()
            for m in masks:
                m[:keep] = m[n:].clone()
        self.sums[:, keep:] = 0
        self.weight[keep:] = 0
        for m in masks:
            m[keep:] = False
        self.row0 = end
        return [strip]

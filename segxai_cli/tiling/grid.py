"""The window grid over a scene: overlapping model-sized tiles, borders always covered.

Like TorchGeo's GridGeoSampler, but the last row/column of windows is snapped to the scene edge so
that no border pixel is dropped and every window (except in scenes smaller than a tile) has the
model's native size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from rasterio.windows import Window


def axis_starts(length: int, tile: int, stride: int) -> list[int]:
    """Window offsets along one axis: regular steps, the last one snapped to end at ``length``."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Windows of ``tile`` pixels with ``overlap`` pixels shared between neighbours."""

    width: int
    height: int
    tile: int
    overlap: int = 0

    def __post_init__(self) -> None:
        if self.tile <= 0:
            raise ValueError("tile size must be positive")
        if not 0 <= self.overlap < self.tile:
            raise ValueError(f"overlap must be in [0, tile) (got {self.overlap} for tile {self.tile})")

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def cols(self) -> list[int]:
        return axis_starts(self.width, self.tile, self.stride)

    @property
    def rows(self) -> list[int]:
        return axis_starts(self.height, self.tile, self.stride)

    def windows(self, rows: Optional[tuple[int, int]] = None) -> Iterator[Window]:
        """Row-major windows, clipped to the scene (smaller than ``tile`` only in small scenes);
        with ``rows=(y0, y1)`` only the windows that touch those scene rows."""
        for r in self.rows:
            h = min(self.tile, self.height - r)
            if rows is not None and not (r < rows[1] and r + h > rows[0]):
                continue
            for c in self.cols:
                yield Window(c, r, min(self.tile, self.width - c), h)

    def row_bands(self, n: int) -> list[tuple[int, int]]:
        """The scene's rows cut into up to ``n`` bands ``(y0, y1)`` at window-row tops, each with about
        as many window rows: the blocks of a scene split across workers (each also computes the
        windows above its top that overlap it, so that its rows blend exactly as in one piece)."""
        starts = self.rows
        n = max(1, min(int(n), len(starts)))
        cuts = [0] + [starts[(k * len(starts)) // n] for k in range(1, n)] + [self.height]
        return [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]

    def __len__(self) -> int:
        return len(self.rows) * len(self.cols)


def overlap_from_fraction(tile: int, fraction: float) -> int:
    """``--overlap 0.25`` means a quarter of the tile; kept even so blending windows stay symmetric."""
    if not 0 <= fraction < 1:
        raise ValueError(f"overlap fraction must be in [0, 1) (got {fraction})")
    return int(round(tile * fraction / 2)) * 2

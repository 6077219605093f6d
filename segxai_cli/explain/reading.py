"""The reader thread of the scene pipeline: windows in grid order → padded batches of tiles.

It opens its own dataset handle (GDAL handles are never shared between threads), reads and pads each
window (the tile rule, :mod:`segxai_cli.tiling.tiles`), rasterises its region, decides what needs no
compute (windows entirely nodata; windows outside a vector/bbox region) and queues batches of
``batch_size`` computed windows (CPU tensors, pinned for CUDA), ``prefetch`` ahead of the compute.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from segxai_cli.faults import fault_point
from segxai_cli.raster.reader import open_raster_quiet, read_window_retrying
from segxai_cli.raster.regions import RegionSource
from segxai_cli.raster.source import RasterSource, read_options
from segxai_cli.tiling.grid import TileGrid
from segxai_cli.tiling.tiles import pad_tile

END = object()  # the reader's last item


@dataclass
class Entry:
    window: Window
    index: int  # position in the batch tensors, -1 = not computed
    valid: Optional[np.ndarray] = None  # for not-computed windows with valid pixels


@dataclass
class Batch:
    entries: list[Entry]
    images: Optional[torch.Tensor]  # (B, C, T, T) raw float32, padded
    valid: Optional[torch.Tensor]  # (B, T, T) bool, padding mirrored (for normalisation)
    region: Optional[torch.Tensor]  # (B, T, T) bool or None (predicted mask)

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [(int(e.window.height), int(e.window.width)) for e in self.entries if e.index >= 0]




class Reader(threading.Thread):
    """Reads windows in grid order into batches of computed tiles (own dataset handles)."""

    def __init__(self, source: RasterSource, grid: TileGrid, bidx: Sequence[int], batch_size: int,
                 region: Optional[RegionSource], out: "queue.Queue[Any]", stop: threading.Event,
                 pin: bool = False, rows: Optional[tuple[int, int]] = None) -> None:
        super().__init__(name="segxai-reader", daemon=True)
        self.source, self.grid, self.region = source, grid, region
        self.bidx, self.batch_size, self.tile = list(bidx), int(batch_size), int(grid.tile)
        self.out, self.stop = out, stop
        self.pin = pin
        self.rows = rows  # only the windows touching these scene rows (a block of a split scene)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        reg = None
        # GDAL settings are per thread outside the main thread: this one sets the scene's own.
        env = read_options(bool(self.source.remote_prefixes()), self.tile ** 2 * len(self.bidx) * 4, block_cache=False)
        try:
            with rasterio.Env(**env):
                self.src = open_raster_quiet(self.source)
                try:
                    reg = self.region.open() if self.region is not None else None
                    if self._read_all(reg):
                        self._put(END)
                finally:
                    self.src.close()
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self._put(exc)
        finally:
            if reg is not None:
                reg.close()

    def _read_all(self, reg: Optional[RegionSource]) -> bool:
        entries: list[Entry] = []
        tiles: list[tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]] = []
        for win in self.grid.windows(self.rows):
            if self.stop.is_set():
                return False
            fault_point("read")
            self.src, data, valid = read_window_retrying(self.source, self.src, win, self.bidx)
            entry, tile = self._window(win, data, valid, reg)
            if tile is not None:
                entry.index = len(tiles)
                tiles.append(tile)
            entries.append(entry)
            if len(tiles) == self.batch_size:
                if not self._put(self._batch(entries, tiles)):
                    return False
                entries, tiles = [], []
        return not entries or self._put(self._batch(entries, tiles))

    def _window(self, win: Window, data: np.ndarray, valid: np.ndarray, reg: Optional[RegionSource]):
        """The entry of one window and, when it is computed, its padded (image, validity, region)."""
        if not valid.any():
            return Entry(win, -1), None
        rmask = None
        if reg is not None:
            if reg.skip_outside and not reg.touches(win):
                return Entry(win, -1, valid), None
            rmask = reg.window_mask(win) & valid
            if reg.skip_outside and not rmask.any():
                return Entry(win, -1, valid), None
        x, v = pad_tile(data, valid, self.tile)
        r = None
        if rmask is not None:
            r = torch.zeros((self.tile, self.tile), dtype=torch.bool)
            r[: rmask.shape[0], : rmask.shape[1]] = torch.from_numpy(rmask)
        return Entry(win, 0), (x, v, r)

    def _batch(self, entries, tiles) -> Batch:
        if not tiles:
            return Batch(entries, None, None, None)
        images = torch.stack([t[0] for t in tiles])
        valid = torch.stack([t[1] for t in tiles])
        region = torch.stack([t[2] for t in tiles]) if tiles[0][2] is not None else None
        if self.pin:
            images = images.pin_memory()
        return Batch(entries, images, valid, region)

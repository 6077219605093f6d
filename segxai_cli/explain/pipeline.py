"""Read → tiles → CAM engine → stitch → sink, for one scene, streaming, reading and writing overlapped.

Three threads, each with its own resources (GDAL handles are never shared):

- the **reader** (:mod:`segxai_cli.explain.reading`) reads and pads windows in grid order into
  batches of tiles, ``prefetch`` batches ahead of the compute;
- the **main thread** moves a batch to the device, normalises it, runs the CAM engine (or the plain
  model for ``methods=[]``), blends every window into the on-device
  :class:`~segxai_cli.tiling.blend.StripAccumulator` and, when a block of rows is final, turns it
  into nodata-masked saliency and class rows, updates the running per-band min/max/sum **on the
  device** (no host sync per tile) and moves only that strip to the host;
- the **writer** thread takes finished strips from a bounded queue and hands them to the sink (GDAL
  compression runs while the next batch computes).

Peak memory is bounded by the tile size, the batch size and the scene *width* (the accumulator
holds at most ``tile + block`` rows), never by the scene height.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from segxai_cli.cam import EmptyRegionWarning, explain_batch
from segxai_cli.device import autocast as autocast_ctx
from segxai_cli.explain.reading import END, Batch, Reader
from segxai_cli.faults import fault_point
from segxai_cli.model.adapter import ModelAdapter
from segxai_cli.model.info import CLASS_NODATA
from segxai_cli.model.outputs import class_probs, predicted_class
from segxai_cli.raster.reader import open_raster_quiet
from segxai_cli.raster.regions import RegionSource
from segxai_cli.raster.source import RasterSource
from segxai_cli.raster.stats import BandStats
from segxai_cli.tiling.blend import BlendWeights, Strip, StripAccumulator
from segxai_cli.tiling.grid import TileGrid
from segxai_cli.tiling.tiles import inside_mask, normalize

PRED_NODATA = CLASS_NODATA  # in the class raster
Sink = Callable[[int, np.ndarray, np.ndarray], None]


@dataclass
class PipelineConfig:
    """How one scene is tiled and explained (everything except the model and the files)."""

    tile: int
    overlap: int  # pixels
    bidx: Sequence[int]
    stats: BandStats
    n_classes: int  # classes of the class raster (2 for a one-channel sigmoid model)
    methods: Sequence[str] = ("gradcam",)
    layers: Sequence[str] = ("decoder.last",)  # layer specs; 'a+b' averages
    target_class: int = 1
    normalize: str = "scene"
    use_probs: bool = False
    clip: bool = False  # maps zero outside the given region, statistics over the region
    autocast: Optional[str] = None
    batch_size: int = 4
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    block: int = 256
    prefetch: int = 2
    blend: str = "hann"  # or "flat" (plain averaging, for comparisons)
    method_opts: dict[str, Any] = field(default_factory=dict)  # explain_batch options (rise, occlusion)

    @property
    def bands(self) -> int:
        """Saliency bands: one per method and layer spec (none for plain inference)."""
        return len(self.methods) * len(self.layers)


@dataclass
class SceneStats:
    """What the pipeline measured for one scene (host values, filled in at the end)."""

    width: int = 0
    height: int = 0
    tiles: int = 0
    tiles_computed: int = 0
    tiles_nodata: int = 0
    tiles_outside_region: int = 0
    tiles_empty_region: int = 0
    valid_pixels: int = 0
    computed_pixels: int = 0
    class_pixels: int = 0
    minimum: list[float] = field(default_factory=list)  # per saliency band, raw blended values
    maximum: list[float] = field(default_factory=list)
    mean_raw: list[float] = field(default_factory=list)
    sum_raw: list[float] = field(default_factory=list)  # float64 sums: blocks of a split scene merge exactly
    clipped: bool = False  # maps are zero outside the region, statistics are over the region
    counted_pixels: int = 0  # pixels the saliency statistics are over (valid, or in the region)
    seconds: float = 0.0
    compute_seconds: float = 0.0
    read_wait_seconds: float = 0.0
    write_wait_seconds: float = 0.0

    @property
    def megapixels_per_s(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- writing
class _Writer(threading.Thread):
    """Consumes finished host strips and hands them to ``sink(row0, saliency, prediction)``.

    Completion is signalled with an Event rather than awaited with ``Thread.join``: a signal handler
    that raises inside ``join`` makes CPython mark the thread stopped while it still runs, and the
    clean-up would then close datasets under the writer's feet.
    """

    def __init__(self, sink: Sink) -> None:
        super().__init__(name="segxai-writer", daemon=True)
        self.sink = sink
        self.q: "queue.Queue[Any]" = queue.Queue(maxsize=2)
        self.error: Optional[BaseException] = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            while True:
                item = self.q.get()
                if item is END:
                    return
                if self.error is not None:
                    continue  # drain after a failure
                try:
                    self.sink(*item)
                except BaseException as exc:
                    self.error = exc
        finally:
            self.done.set()

    def put(self, item: Any) -> float:
        if self.error is not None:
            raise self.error
        t0 = time.perf_counter()
        self.q.put(item)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.q.put(END)
        self.done.wait()
        if self.error is not None:
            raise self.error

    def abandon(self) -> None:
        """Stop after a failure elsewhere, without raising the writer's (secondary) error; returns only
        once the thread no longer touches the outputs."""
        if not self.is_alive() and not self.done.is_set() and self.ident is None:
            return  # never started
        while not self.done.is_set():
            with contextlib.suppress(queue.Full):
                self.q.put(END, timeout=0.1)
            self.done.wait(0.1)


# ----------------------------------------------------------------------------- the scene
class _RunningStats:
    """Per-band min / max / sum over valid pixels and pixel counts, kept on the device (no syncs)."""

    def __init__(self, bands: int, device: torch.device) -> None:
        self.min = torch.full((bands,), float("inf"), device=device)
        self.max = torch.full((bands,), float("-inf"), device=device)
        self.sum = torch.zeros((bands,), dtype=torch.float64, device=device)
        self.valid = torch.zeros((), dtype=torch.int64, device=device)
        self.counted = torch.zeros((), dtype=torch.int64, device=device)
        self.computed = torch.zeros((), dtype=torch.int64, device=device)
        self.klass = torch.zeros((), dtype=torch.int64, device=device)
        self.empty = torch.zeros((), dtype=torch.int64, device=device)

    def update(self, sal: torch.Tensor, valid: torch.Tensor, computed: torch.Tensor, is_class: torch.Tensor,
               counted: torch.Tensor) -> None:
        """``counted``: the pixels the saliency statistics are over (valid ones, or the region's)."""
        if sal.shape[0]:
            inf = torch.full_like(sal, float("inf"))
            self.min.copy_(torch.minimum(self.min, torch.where(counted[None], sal, inf).amin((1, 2))))
            self.max.copy_(torch.maximum(self.max, torch.where(counted[None], sal, -inf).amax((1, 2))))
            self.sum.add_(torch.where(counted[None], sal, torch.zeros_like(sal)).sum((1, 2), dtype=torch.float64))
        self.counted += counted.sum()
        self.valid += valid.sum()
        self.computed += computed.sum()
        self.klass += (is_class & computed).sum()

    def fill(self, stats: SceneStats) -> None:
        """Copy to the host (one sync at the end of the scene)."""
        stats.tiles_empty_region = int(self.empty)
        stats.valid_pixels = int(self.valid)
        stats.computed_pixels = int(self.computed)
        stats.class_pixels = int(self.klass)
        n = int(self.counted)
        stats.counted_pixels = n
        lo, hi, sm = self.min.cpu().tolist(), self.max.cpu().tolist(), self.sum.cpu().tolist()
        nan = float("nan")
        stats.minimum = [float(v) if n else nan for v in lo]
        stats.maximum = [float(v) if n else nan for v in hi]
        stats.mean_raw = [float(v) / n if n else nan for v in sm]
        stats.sum_raw = [float(v) for v in sm]


class ScenePipeline:
    """One scene through the engine; :meth:`run` streams finished strips to the sink.

    ``rows=(y0, y1)``: only those scene rows (a block of a scene split across workers). The windows
    that touch them are computed — those above ``y0`` too, so every row blends exactly the windows
    it blends in a whole-scene run — but only rows ``y0 .. y1`` are emitted, and the statistics and
    tile counts are theirs (a window counts in the block that holds its top row).
    """

    def __init__(self, source: RasterSource, adapter: ModelAdapter, cfg: PipelineConfig, width: int, height: int,
                 region: Optional[RegionSource] = None, sink: Optional[Sink] = None,
                 progress: Optional[Callable[[int], None]] = None, rows: Optional[tuple[int, int]] = None) -> None:
        self.source, self.adapter, self.cfg = source, adapter, cfg
        self.region, self.progress = region, progress
        self.width, self.height = width, height
        self.grid = TileGrid(width, height, cfg.tile, cfg.overlap)
        self.rows = rows
        y0, y1 = rows or (0, height)
        tops = [r for r in self.grid.rows if r < y1 and r + min(cfg.tile, height - r) > y0]
        dev = cfg.device
        self.weights = BlendWeights(self.grid.rows, self.grid.cols, cfg.tile, height, width, dev, flat=cfg.blend == "flat")
        self.acc = StripAccumulator(width, min(height, tops[-1] + cfg.tile), cfg.bands + cfg.n_classes, cfg.tile,
                                    cfg.block, dev, track_region=cfg.clip and region is not None, start=tops[0])
        self.running = _RunningStats(cfg.bands, dev)
        owned = sum(y0 <= r < y1 for r in self.grid.rows) * len(self.grid.cols)
        self.stats = SceneStats(width=width, height=height, tiles=owned)
        self.writer = _Writer(sink) if sink is not None else None

    def owns(self, row_off: int) -> bool:
        """Whether a window (by its top row) counts in this run's statistics."""
        return self.rows is None or self.rows[0] <= row_off < self.rows[1]

    # ---------------------------------------------------------------- compute one batch
    def compute(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (B, bands + classes, T, T), valid (B, T, T)) of a batch's computed windows."""
        fault_point("compute")
        cfg, dev = self.cfg, self.cfg.device
        images = batch.images.to(dev, non_blocking=True)
        valid_ctx = batch.valid.to(dev, non_blocking=True)
        images = normalize(images, valid_ctx, cfg.stats)
        # Padding (mirrored context) and nodata pixels are never part of the explained region.
        valid = valid_ctx & inside_mask(batch.sizes, cfg.tile, dev)
        if not cfg.methods:
            with torch.inference_mode(), autocast_ctx(dev, cfg.autocast):
                logits = self.adapter(images)
            return class_probs(logits).clone(), valid
        region = batch.region.to(dev, non_blocking=True) if batch.region is not None else None
        maps, logits = [], None
        for spec in cfg.layers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyRegionWarning)  # counted below instead
                m, lg = explain_batch(
                    self.adapter, images, layer=spec.split("+"), methods=list(cfg.methods),
                    target_class=cfg.target_class, region=region, valid=valid,
                    normalize=cfg.normalize == "tile", use_probs=cfg.use_probs, autocast=cfg.autocast,
                    return_logits=True, **cfg.method_opts,
                )
            maps += [m[name] for name in cfg.methods]
            logits = lg if logits is None else logits
        used = region if region is not None else predicted_class(logits, cfg.target_class)
        empty = ~(used & valid).flatten(1).any(1)
        if self.rows is not None:
            tops = [int(e.window.row_off) for e in batch.entries if e.index >= 0]
            empty &= torch.tensor([self.owns(r) for r in tops], device=dev)
        self.running.empty += empty.sum()
        return torch.cat([torch.stack(maps, 1), class_probs(logits)], 1), valid

    # ---------------------------------------------------------------- finished strips
    def emit(self, strips: list[Strip]) -> None:
        M = self.cfg.bands
        for s in strips:
            if self.rows is not None and (s := s.crop(*self.rows)) is None:
                continue
            valid = s.valid
            computed = s.computed & valid
            sal, probs = s.sums[:M], s.sums[M:]
            pred = probs.argmax(0).to(torch.uint8)
            pred = torch.where(computed, pred, torch.full_like(pred, PRED_NODATA))
            counted = valid
            if s.region is not None:  # clipped to the region: zero outside it, statistics within it
                counted = valid & s.region
                sal = torch.where(counted[None], sal, torch.zeros_like(sal))
            sal = torch.where(valid[None], sal, torch.full_like(sal, float("nan")))
            self.running.update(sal, valid, computed, pred == self.cfg.target_class, counted)
            if self.writer is not None:
                self.stats.write_wait_seconds += self.writer.put((s.row0, sal.cpu().numpy(), pred.cpu().numpy()))

    def blend(self, batch: Batch, values: Optional[torch.Tensor], valid: Optional[torch.Tensor], row: int) -> int:
        """Accumulate a batch's windows (row-major); returns the current window row."""
        for e in batch.entries:
            win = e.window
            r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
            if r0 != row:
                if row >= 0:
                    self.emit(self.acc.advance(r0))
                row = r0
            owned = self.owns(r0)
            if e.index >= 0:
                self.acc.add(r0, c0, values[e.index, :, :h, :w], self.weights.window(r0, c0))
                self.acc.mark_valid(r0, c0, valid[e.index, :h, :w])
                if self.acc.region is not None:
                    self.acc.mark_region(r0, c0, batch.region[e.index, :h, :w])
                self.stats.tiles_computed += owned
            elif e.valid is not None:
                self.acc.mark_valid(r0, c0, torch.from_numpy(e.valid))
                self.stats.tiles_outside_region += owned
            else:
                self.stats.tiles_nodata += owned
        if self.progress is not None:
            self.progress(len(batch.entries))
        return row

    # ---------------------------------------------------------------- the loop
    def run(self) -> SceneStats:
        t_start = time.perf_counter()
        stop = threading.Event()
        q: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, self.cfg.prefetch))
        reader = Reader(self.source, self.grid, self.cfg.bidx, self.cfg.batch_size, self.region, q, stop,
                        pin=self.cfg.device.type == "cuda", rows=self.rows)
        row = -1
        try:
            reader.start()
            if self.writer is not None:
                self.writer.start()
            while True:
                t0 = time.perf_counter()
                item = q.get()
                self.stats.read_wait_seconds += time.perf_counter() - t0
                if item is END:
                    break
                if isinstance(item, BaseException):
                    raise item
                t1 = time.perf_counter()
                values, valid = self.compute(item) if item.images is not None else (None, None)
                row = self.blend(item, values, valid, row)
                self.stats.compute_seconds += time.perf_counter() - t1
            self.emit(self.acc.finish())
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        finally:
            stop.set()
            if self.writer is not None:
                self.writer.abandon()
            reader.join(timeout=60)
        self.running.fill(self.stats)
        self.stats.clipped = self.acc.region is not None
        if self.cfg.device.type == "cuda":
            torch.cuda.synchronize(self.cfg.device)
        self.stats.seconds = time.perf_counter() - t_start
        return self.stats


def run_scene(source, model, cfg: PipelineConfig, *, region: Optional[RegionSource] = None,
              sink: Optional[Sink] = None, progress: Optional[Callable[[int], None]] = None,
              width: Optional[int] = None, height: Optional[int] = None) -> SceneStats:
    """Explain (or, with ``cfg.methods == []``, only predict) one scene, streaming strips to ``sink``.

    ``sink(row0, saliency, prediction)`` receives full-width rows: ``saliency`` float32
    (bands, h, W), raw blended maps (NaN where the input is nodata, 0 where valid but not
    computed); ``prediction`` uint8 (h, W) class indexes (255 = nodata / not computed). Returns the
    scene statistics (running min/max/mean of every band over valid pixels, counts, timings).
    """
    from segxai_cli.model.families import as_adapter

    source = RasterSource.of(source)
    if width is None or height is None:
        with open_raster_quiet(source) as src:
            width, height = src.width, src.height
    return ScenePipeline(source, as_adapter(model), cfg, width, height, region, sink, progress).run()

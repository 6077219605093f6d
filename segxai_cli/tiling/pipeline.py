"""Read → engine → stitch → write for one scene, streaming, with reading and writing overlapped.

Three threads, each with its own resources (GDAL handles are never shared):

- the **reader** opens its own dataset handle, walks the window grid in row-major order, reads and
  pads each window, rasterises its region, decides what needs no compute (windows entirely nodata;
  windows outside a vector/bbox region) and queues batches of ``batch_size`` computed windows
  (CPU tensors, pinned for CUDA) — it prefetches ``prefetch`` batches ahead of the compute;
- the **main thread** moves a batch to the device, normalises it with the checkpoint's band
  statistics, runs the CAM engine (or the plain model for ``methods=[]``), blends every window into
  the on-device :class:`~segxai_cli.tiling.blend.StripAccumulator` and, when a block of rows is
  final, turns it into nodata-masked saliency and class rows, updates the running per-method
  min/max/sum **on the device** (no host sync per tile) and moves only that strip to the host;
- the **writer** thread takes finished strips from a bounded queue and writes them (GDAL
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
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window

from segxai_cli.raster.reader import BandStats, open_raster_quiet, read_window
from segxai_cli.raster.regions import RegionSource
from segxai_cli.tiling.blend import BlendWeights, Strip, StripAccumulator
from segxai_cli.tiling.grid import TileGrid

NORMALIZE_MODES = ("scene", "tile", "none")
PRED_NODATA = 255


@dataclass
class PipelineConfig:
    """How one scene is tiled and explained (everything except the model and the files)."""

    tile: int
    overlap: int
    bidx: Sequence[int]
    stats: BandStats
    methods: Sequence[str] = ("gradcam",)
    layers: Sequence[str] = ("decoder.last",)
    target_class: int = 1
    normalize: str = "scene"
    use_probs: bool = False
    autocast: Optional[str] = None
    batch_size: int = 4
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    block: int = 256
    prefetch: int = 2
    blend: str = "hann"  # or "flat" (plain averaging, for comparisons)
    n_classes: Optional[int] = None  # model output channels (1 = sigmoid); None: read from the head


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
    minimum: dict[str, float] = field(default_factory=dict)
    maximum: dict[str, float] = field(default_factory=dict)
    mean_raw: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    compute_seconds: float = 0.0
    read_wait_seconds: float = 0.0
    write_wait_seconds: float = 0.0

    @property
    def megapixels_per_s(self) -> float:
        return self.width * self.height / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Entry:
    window: Window
    index: int  # position in the batch tensors, -1 = not computed
    valid: Optional[np.ndarray] = None  # for not-computed windows with valid pixels


@dataclass
class _Batch:
    entries: list[_Entry]
    images: Optional[torch.Tensor]  # (B, C, T, T) raw float32, padded
    valid: Optional[torch.Tensor]  # (B, T, T) bool
    region: Optional[torch.Tensor]  # (B, T, T) bool or None (predicted mask)


_END = object()


def _pad_to(x: np.ndarray, valid: np.ndarray, region: Optional[np.ndarray], tile: int):
    """Pad a window smaller than the tile: reflect the image (replicate for tiny windows); the
    padding is invalid and outside the region."""
    h, w = valid.shape
    ph, pw = tile - h, tile - w
    xt = torch.from_numpy(x)
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        xt = F.pad(xt[None], (0, pw, 0, ph), mode=mode)[0]
        # The padding holds reflections the model may use as context: valid for the input
        # normalisation, outside the region; outputs are cropped back to (h, w).
        vt = torch.ones((tile, tile), dtype=torch.bool)
        vt[:h, :w] = torch.from_numpy(valid)
        r = None
        if region is not None:
            r = torch.zeros((tile, tile), dtype=torch.bool)
            r[:h, :w] = torch.from_numpy(region)
        return xt, vt, r
    return xt, torch.from_numpy(valid), (torch.from_numpy(region) if region is not None else None)


class _Reader(threading.Thread):
    """Reads windows in grid order into batches of computed tiles (own dataset handles)."""

    def __init__(self, path: Path, grid: TileGrid, cfg: PipelineConfig, region: Optional[RegionSource],
                 out: "queue.Queue[Any]", stop: threading.Event) -> None:
        super().__init__(name="segxai-reader", daemon=True)
        self.path, self.grid, self.cfg, self.region = path, grid, cfg, region
        self.out, self.stop = out, stop
        self.pin = cfg.device.type == "cuda"

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
        try:
            with open_raster_quiet(self.path) as src:
                reg = self.region.open() if self.region is not None else None
                entries: list[_Entry] = []
                imgs, valids, regs = [], [], []
                tile = self.cfg.tile
                for win in self.grid.windows():
                    if self.stop.is_set():
                        return
                    data, valid = read_window(src, win, self.cfg.bidx)
                    if not valid.any():
                        entries.append(_Entry(win, -1))
                        continue
                    rmask = None
                    if reg is not None:
                        if reg.skip_outside and not reg.touches(win):
                            entries.append(_Entry(win, -1, valid))
                            continue
                        rmask = reg.window_mask(win) & valid
                        if reg.skip_outside and not rmask.any():
                            entries.append(_Entry(win, -1, valid))
                            continue
                    x, v, r = _pad_to(data, valid, rmask, tile)
                    entries.append(_Entry(win, len(imgs)))
                    imgs.append(x)
                    valids.append(v)
                    regs.append(r)
                    if len(imgs) == self.cfg.batch_size:
                        if not self._put(self._batch(entries, imgs, valids, regs)):
                            return
                        entries, imgs, valids, regs = [], [], [], []
                if entries:
                    if not self._put(self._batch(entries, imgs, valids, regs)):
                        return
            self._put(_END)
        except BaseException as exc:  # handed to the main thread, which re-raises it
            self._put(exc)
        finally:
            if reg is not None:
                reg.close()

    def _batch(self, entries, imgs, valids, regs) -> _Batch:
        if not imgs:
            return _Batch(entries, None, None, None)
        images = torch.stack(imgs)
        valid = torch.stack(valids)
        region = torch.stack(regs) if regs[0] is not None else None
        if self.pin:
            images = images.pin_memory()
        return _Batch(entries, images, valid, region)


class _Writer(threading.Thread):
    """Consumes finished host strips and hands them to ``sink(row0, saliency, prediction)``."""

    def __init__(self, sink: Callable[[int, np.ndarray, np.ndarray], None]) -> None:
        super().__init__(name="segxai-writer", daemon=True)
        self.sink = sink
        self.q: "queue.Queue[Any]" = queue.Queue(maxsize=2)
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        while True:
            item = self.q.get()
            if item is _END:
                return
            if self.error is not None:
                continue  # drain after a failure
            try:
                self.sink(*item)
            except BaseException as exc:
                self.error = exc

    def put(self, item: Any) -> float:
        if self.error is not None:
            raise self.error
        t0 = time.perf_counter()
        self.q.put(item)
        return time.perf_counter() - t0

    def close(self) -> None:
        self.q.put(_END)
        self.join()
        if self.error is not None:
            raise self.error


def _autocast(device: torch.device, autocast: Optional[str]):
    if autocast in (None, "none", False):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[autocast]
    return torch.autocast(device_type=device.type, dtype=dtype)


def class_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, L, H, W) logits → class probabilities; a 1-channel (sigmoid) model gives [1 - p, p]."""
    logits = logits.float()
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], 1)
    return torch.softmax(logits, 1)


def run_scene(
    path: str | Path,
    model: torch.nn.Module,
    cfg: PipelineConfig,
    *,
    region: Optional[RegionSource] = None,
    sink: Optional[Callable[[int, np.ndarray, np.ndarray], None]] = None,
    progress: bool = False,
    width: Optional[int] = None,
    height: Optional[int] = None,
) -> SceneStats:
    """Explain (or, with ``cfg.methods == []``, only predict) one scene, streaming strips to ``sink``.

    ``sink(row0, saliency, prediction)`` receives full-width rows: ``saliency`` float32
    (methods, h, W), raw blended maps (NaN where the input is nodata, 0 where valid but not
    computed); ``prediction`` uint8 (h, W) class indexes (255 = nodata / not computed). Returns the
    scene statistics (running min/max/mean of every method over valid pixels, counts, timings).
    """
    from segxai_cli.cam import EmptyRegionWarning, explain_batch, predict_region

    path = Path(path)
    if cfg.normalize not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}")
    t_start = time.perf_counter()
    if width is None or height is None:
        with open_raster_quiet(path) as src:
            width, height = src.width, src.height
    dev = cfg.device
    methods = list(cfg.methods)
    M = len(methods)
    grid = TileGrid(width, height, cfg.tile, cfg.overlap)
    weights = BlendWeights(grid.rows, grid.cols, cfg.tile, height, width, dev, flat=cfg.blend == "flat")
    n_prob = max(2, cfg.n_classes) if cfg.n_classes else _n_prob_channels(model, cfg)
    acc = StripAccumulator(width, height, M + n_prob, cfg.tile, cfg.block, dev)
    stats = SceneStats(width=width, height=height, tiles=len(grid))
    mean = torch.tensor(cfg.stats.mean, dtype=torch.float32, device=dev)[None, :, None, None]
    std = torch.tensor(cfg.stats.std, dtype=torch.float32, device=dev)[None, :, None, None]

    # running statistics, on the device
    run_min = torch.full((M,), float("inf"), device=dev)
    run_max = torch.full((M,), float("-inf"), device=dev)
    run_sum = torch.zeros((M,), dtype=torch.float64, device=dev)
    n_valid = torch.zeros((), dtype=torch.int64, device=dev)
    n_computed = torch.zeros((), dtype=torch.int64, device=dev)
    n_class = torch.zeros((), dtype=torch.int64, device=dev)
    n_empty = torch.zeros((), dtype=torch.int64, device=dev)

    stop = threading.Event()
    q: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, cfg.prefetch))
    reader = _Reader(path, grid, cfg, region, q, stop)
    writer = _Writer(sink) if sink is not None else None
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(grid), unit="tile", desc=path.name, leave=False, dynamic_ncols=True)

    def emit(strips: list[Strip]) -> None:
        nonlocal n_valid, n_computed, n_class
        for s in strips:
            valid = s.valid
            computed = s.computed & valid
            sal = s.sums[:M]
            probs = s.sums[M:]
            pred = probs.argmax(0).to(torch.uint8) if probs.shape[0] else torch.zeros_like(valid, dtype=torch.uint8)
            pred = torch.where(computed, pred, torch.full_like(pred, PRED_NODATA))
            if M:
                sal = torch.where(valid[None], sal, torch.full_like(sal, float("nan")))
                inf = torch.full_like(sal, float("inf"))
                run_min.copy_(torch.minimum(run_min, torch.where(valid[None], sal, inf).amin((1, 2))))
                run_max.copy_(torch.maximum(run_max, torch.where(valid[None], sal, -inf).amax((1, 2))))
                run_sum.add_(torch.where(valid[None], sal, torch.zeros_like(sal)).sum((1, 2), dtype=torch.float64))
            n_valid = n_valid + valid.sum()
            n_computed = n_computed + computed.sum()
            n_class = n_class + ((pred == cfg.target_class) & computed).sum()
            if writer is not None:
                sal_h = sal.cpu().numpy() if M else np.zeros((0, s.height, width), np.float32)
                stats.write_wait_seconds += writer.put((s.row0, sal_h, pred.cpu().numpy()))

    current_row = -1
    try:
        reader.start()
        if writer is not None:
            writer.start()
        while True:
            t0 = time.perf_counter()
            item = q.get()
            stats.read_wait_seconds += time.perf_counter() - t0
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            batch: _Batch = item
            t1 = time.perf_counter()
            values = valid = None
            if batch.images is not None:
                images = batch.images.to(dev, non_blocking=True)
                valid = batch.valid.to(dev, non_blocking=True)
                images = ((images - mean) / std) * valid[:, None]
                region_t = batch.region.to(dev, non_blocking=True) if batch.region is not None else None
                if M:
                    # Padding (valid for normalisation, as reflected context) and nodata pixels are
                    # never part of the explained region.
                    explainable = torch.zeros_like(valid)
                    for e in batch.entries:
                        if e.index >= 0:
                            explainable[e.index, : int(e.window.height), : int(e.window.width)] = True
                    explainable &= valid
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", EmptyRegionWarning)  # counted below instead
                        maps, logits = explain_batch(
                            model, images, layer=list(cfg.layers), methods=methods,
                            target_class=cfg.target_class, region=region_t, valid=explainable,
                            normalize=cfg.normalize == "tile", use_probs=cfg.use_probs,
                            autocast=cfg.autocast if cfg.autocast not in ("none",) else None,
                            return_logits=True,
                        )
                    used = region_t if region_t is not None else predict_region(logits, cfg.target_class)
                    n_empty = n_empty + (~(used & explainable).flatten(1).any(1)).sum()
                    values = torch.cat([torch.stack([maps[m] for m in methods], 1), class_probs(logits)], 1)
                else:
                    with torch.inference_mode(), _autocast(dev, cfg.autocast):
                        out = model(images)
                    logits = out[0] if isinstance(out, (tuple, list)) else out
                    values = class_probs(logits).clone()
                if values.shape[1] != M + n_prob:
                    raise RuntimeError(f"model returned {values.shape[1] - M} class channels, expected {n_prob}")
            for e in batch.entries:
                win = e.window
                r0, c0, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
                if r0 != current_row:
                    if current_row >= 0:
                        emit(acc.advance(r0))
                    current_row = r0
                if e.index >= 0:
                    acc.add(r0, c0, values[e.index, :, :h, :w], weights.window(r0, c0))
                    acc.mark_valid(r0, c0, valid[e.index, :h, :w])
                    stats.tiles_computed += 1
                elif e.valid is not None:
                    acc.mark_valid(r0, c0, torch.from_numpy(e.valid))
                    stats.tiles_outside_region += 1
                else:
                    stats.tiles_nodata += 1
                if bar is not None:
                    bar.update(1)
            stats.compute_seconds += time.perf_counter() - t1
        emit(acc.finish())
        if writer is not None:
            writer.close()
            writer = None
    finally:
        stop.set()
        if bar is not None:
            bar.close()
        if writer is not None:  # failed: stop the writer without raising its (secondary) error
            with contextlib.suppress(BaseException):
                writer.q.put(_END)
                writer.join(timeout=60)
        reader.join(timeout=60)

    stats.tiles_empty_region = int(n_empty)
    stats.valid_pixels = int(n_valid)
    stats.computed_pixels = int(n_computed)
    stats.class_pixels = int(n_class)
    if M:
        lo, hi, sm = run_min.cpu().tolist(), run_max.cpu().tolist(), run_sum.cpu().tolist()
        for i, m in enumerate(methods):
            ok = stats.valid_pixels > 0
            stats.minimum[m] = float(lo[i]) if ok else float("nan")
            stats.maximum[m] = float(hi[i]) if ok else float("nan")
            stats.mean_raw[m] = float(sm[i] / stats.valid_pixels) if ok else float("nan")
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    stats.seconds = time.perf_counter() - t_start
    return stats


def _n_prob_channels(model: torch.nn.Module, cfg: PipelineConfig) -> int:
    """Number of class channels of the model (2 for a 1-channel sigmoid model), without a forward."""
    head = getattr(model, "segmentation_head", None)
    if head is not None:
        for mod in head.modules():
            if isinstance(mod, torch.nn.Conv2d):
                return max(2, mod.out_channels)
    return 2

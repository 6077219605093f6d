"""The study over scenes: tiles read with the one tile rule, masks matched by name, rows collected.

    from segxai_cli.evaluation import evaluate_scenes
    rows = evaluate_scenes(["scene.tif"], masks="masks/", methods=["gradcam", "scorecam"],
                           layers=["decoder.last"], thresholds=[0.1, 0.2, 0.3])
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from segxai_cli.errors import InputError, SegxaiError, UsageError
from segxai_cli.evaluation.batch import TileTensors, evaluate_batch, randomized_copy
from segxai_cli.evaluation.config import COLUMNS, DEFAULT_LAYERS, DEFAULT_METHODS, DEFAULT_THRESHOLD, MASK_IGNORE_VALUE, StudyConfig
from segxai_cli.raster.inputs import expand_paths, match_masks
from segxai_cli.raster.source import RasterSource

# progress(index, count, scene name, tiles, megapixels) when a scene starts -> advance(n tiles)
Progress = Callable[[int, int, str, int, float], Callable[[int], None]]


@dataclass
class StudyResult:
    """Rows plus what a report must say about them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (scene, message)
    scenes: list[dict[str, Any]] = field(default_factory=list)  # per scene: tiles, skipped, target source
    forwards: int = 0  # model forward images (excluding CAM computation)
    deduplicated: int = 0  # reduced inputs identical to another one (or to the full / all-fill tile), not re-run
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # file name, sha256, architecture


def scene_sources(inputs: Sequence[Any]) -> list[RasterSource]:
    """Scenes from files, folders and globs (the rule every command uses); a folder without scenes is an error."""
    sources, problems = expand_paths(inputs)
    for spec, reason in problems:
        raise InputError(f"{spec}: {reason}")
    if not sources:
        raise UsageError("no input scenes")
    return sources


def run_study(
    inputs: Sequence[Any],
    masks: Any = None,
    model: Any = None,
    *,
    config: StudyConfig | None = None,
    bidx: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    max_tiles: int | None = None,
    keep_going: bool = False,
    progress: Progress | None = None,
) -> StudyResult:
    """Run the study over scenes; see :func:`evaluate_scenes`. ``keep_going`` collects per-scene errors.

    ``progress(index, count, scene name, tiles, megapixels)`` is called when a scene starts and returns
    a callback taking the number of tiles done (the same protocol as explain's).
    """
    from segxai_cli.device import resolve_device
    from segxai_cli.model.checkpoint import load_model, require_band_stats
    from segxai_cli.cam.engine import layer_refs
    from segxai_cli.cam.registry import layer_free
    from segxai_cli.model.families import as_adapter

    t0 = time.perf_counter()
    cfg = (config or StudyConfig()).validate()
    sources = scene_sources(inputs)
    if max_tiles is not None and max_tiles < 1:
        raise UsageError(f"--max-tiles {max_tiles}: must be at least 1")
    mask_map = match_masks(sources, _as_list(masks)) if masks is not None else {s: None for s in sources}
    dev = resolve_device(device)
    net, info = load_model(model, dev)
    cfg.target_class, _ = info.resolve_class(cfg.target_class)
    if layer_free(cfg.methods):
        cfg.layers = ["input"]  # model-agnostic methods perturb the input: no layer
    for layer in cfg.layers:
        layer_refs(net, layer.split("+"), cfg.methods)
    if cfg.sanity and as_adapter(net).bare:
        raise UsageError("--sanity re-initialises the model's weights, which a bare TorchScript/ONNX model does not expose")
    stats = require_band_stats(info)
    bands = list(bidx) if bidx else list(info.bands)
    if len(bands) != info.in_channels:
        raise UsageError(f"-b/--bidx: {len(bands)} band(s) selected but the model takes {info.in_channels}")
    scene = _SceneStudy(net, info, cfg, stats, bands, dev, randomized_copy(net, cfg.seed) if cfg.sanity else None)
    result = StudyResult(model={"file": info.path, "sha256": info.sha256, "arch": info.label})
    for i, source in enumerate(sources, 1):
        try:
            rows, summary = scene.run(source, mask_map[source], masks is not None, max_tiles,
                                      (lambda name, n, mp, i=i: progress(i, len(sources), name, n, mp)) if progress else None)
        except SegxaiError as exc:
            if not keep_going:
                raise
            result.errors.append((str(source), str(exc)))
            continue
        result.rows.extend(rows)
        result.scenes.append(summary)
    result.forwards, result.deduplicated = scene.counter
    result.seconds = time.perf_counter() - t0
    return result


def _as_list(items: Any) -> list:
    return [items] if isinstance(items, (str, RasterSource)) or hasattr(items, "__fspath__") else list(items)


class _SceneStudy:
    """Reads a scene's tiles (and mask) batch by batch and evaluates them."""

    def __init__(self, net, info, cfg: StudyConfig, stats, bands, dev, random_net) -> None:
        self.net, self.info, self.cfg, self.stats = net, info, cfg, stats
        self.bands, self.dev, self.random_net = bands, dev, random_net
        self.tile = int(info.tile_size)
        self.counter = [0, 0]

    def run(self, source: RasterSource, mask: RasterSource | None, masks_given: bool, max_tiles, start):
        from segxai_cli.raster.reader import check_bands, open_raster, open_raster_quiet
        from segxai_cli.tiling.grid import TileGrid

        if masks_given and mask is None:
            raise InputError(f"{source}: no mask {source.stem}_mask.tif found in --masks")
        rows: list[dict[str, Any]] = []
        skipped = 0
        with open_raster(source) as src:
            check_bands(src, self.bands)
            msk = open_raster_quiet(mask) if mask is not None else None
            try:
                if msk is not None:
                    check_mask_grid(src, msk)
                windows = list(TileGrid(src.width, src.height, self.tile, 0).windows())[:max_tiles]
                advance = start(source.name, len(windows), src.width * src.height / 1e6) if start else None
                for s in range(0, len(windows), self.cfg.batch_size):
                    ids = list(range(s, min(s + self.cfg.batch_size, len(windows))))
                    skipped += self._batch(src, msk, source, windows, ids, rows)
                    if advance:
                        advance(len(ids))
            finally:
                if msk is not None:
                    msk.close()
        summary = {"scene": source.stem, "path": str(source), "mask": str(mask) if mask else None,
                   "target_source": "ground_truth" if mask else "prediction",
                   "tiles": len(windows), "skipped_nodata_tiles": skipped}
        return [{k: r[k] for k in COLUMNS} for r in rows], summary

    def _batch(self, src, msk, source: RasterSource, windows, ids: list[int], rows: list) -> int:
        """Evaluate the tiles ``ids``; returns how many were skipped (nothing valid to evaluate)."""
        from segxai_cli.raster.reader import read_window
        from segxai_cli.tiling.tiles import prepare_tiles

        wins = [windows[i] for i in ids]
        images, valid = prepare_tiles([read_window(src, w, self.bands) for w in wins], self.stats, self.tile, self.dev)
        region, target = valid, None
        if msk is not None:
            target, ignore = read_target(msk, wins, self.tile, self.cfg.target_class, self.dev)
            region = region & ~ignore
        keep = region.flatten(1).any(1)
        sel = keep.nonzero().flatten().tolist()
        if not sel:
            return len(ids)
        if len(sel) < len(ids):
            images, region, valid = images[sel], region[sel], valid[sel]
            target = target[sel] if target is not None else None
        tiles = TileTensors(images, region, target, valid)
        per_tile = evaluate_batch(self.net, tiles, self.cfg, self.cfg.target_class, self.stats, self.random_net, self.counter)
        for i, trows in zip(sel, per_tile):
            win = wins[i]
            for r in trows:
                rows.append({"scene": source.stem, "tile": ids[i], "row_off": int(win.row_off),
                             "col_off": int(win.col_off), **r})
        return len(ids) - len(sel)


def check_mask_grid(src, msk) -> None:
    """The mask must share the scene's pixel grid: size, transform and CRS."""
    problems = []
    if (msk.width, msk.height) != (src.width, src.height):
        problems.append(f"size {msk.width}x{msk.height} != {src.width}x{src.height}")
    if not msk.transform.almost_equals(src.transform):
        problems.append("transform differs")
    if (msk.crs or None) != (src.crs or None):
        problems.append(f"CRS {msk.crs} != {src.crs}")
    if problems:
        raise InputError(f"{msk.name}: mask grid does not match scene {RasterSource.of(src.name).name} ({'; '.join(problems)})")


def read_target(msk, windows, tile: int, target_class: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask windows -> (target, ignore) (B, tile, tile) bool; nodata / 255 are ignored; padding is ignored."""
    tg, ig = [], []
    for win in windows:
        data = msk.read(1, window=win)
        valid = msk.read_masks(1, window=win) > 0
        h, w = data.shape
        t = np.zeros((tile, tile), bool)
        i = np.ones((tile, tile), bool)
        t[:h, :w] = data == target_class
        i[:h, :w] = (~valid) | (data == MASK_IGNORE_VALUE)
        t &= ~i
        tg.append(t)
        ig.append(i)
    return torch.from_numpy(np.stack(tg)).to(device), torch.from_numpy(np.stack(ig)).to(device)


def evaluate_scenes(
    inputs: Sequence[Any],
    masks: Any = None,
    model: Any = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    layers: Sequence[str] = DEFAULT_LAYERS,
    thresholds: Sequence[float] = (DEFAULT_THRESHOLD,),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The study as a library call: one row dict per tile × method × layer × threshold × mode.

    ``inputs``: GeoTIFF scenes; ``masks``: a folder / glob / files matched by ``<stem>_mask.tif``
    (None: the model's prediction is the target); ``model``: checkpoint path, ``(module, info)`` or
    None for the bundled model. Other keyword arguments: the :class:`StudyConfig` fields
    (``target_class``, ``fill``, ``curve_steps``, ``sanity``, ``seed``, ``batch_size``, ``chunk``,
    ...) and ``bidx``, ``device``, ``max_tiles``.
    """
    cfg_keys = set(StudyConfig.__dataclass_fields__)
    cfg = StudyConfig(methods=methods, layers=layers, thresholds=thresholds,
                      **{k: v for k, v in kwargs.items() if k in cfg_keys})
    rest = {k: v for k, v in kwargs.items() if k not in cfg_keys}
    return run_study(inputs, masks, model, config=cfg, **rest).rows

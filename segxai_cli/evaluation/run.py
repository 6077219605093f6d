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
from segxai_cli.evaluation.batch import TileTensors, evaluate_batch
from segxai_cli.evaluation.config import COLUMNS, DEFAULT_LAYERS, DEFAULT_METHODS, DEFAULT_THRESHOLD, MASK_IGNORE_VALUE, StudyConfig
from segxai_cli.raster.inputs import expand_paths, match_masks
from segxai_cli.raster.source import RasterSource

# progress(index, count, scene name, tiles, megapixels) when a scene starts -> advance(n tiles)
Progress = Callable[[int, int, str, int, float], Callable[[int], None]]


@dataclass
class StudyResult:
    """Rows plus what a report must say about them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    sanity_rows: list[dict[str, Any]] = field(default_factory=list)  # --sanity: per tile × method × layer × step
    sanity_groups: list[dict[str, Any]] = field(default_factory=list)  # the randomised groups, output side first
    errors: list[tuple[str, str]] = field(default_factory=list)  # (scene, message)
    scenes: list[dict[str, Any]] = field(default_factory=list)  # per scene: tiles, skipped, target source
    forwards: int = 0  # model forward images (excluding CAM computation)
    deduplicated: int = 0  # reduced inputs identical to another one (or to the full / all-fill tile), not re-run
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)  # file name, sha256, architecture
    curves: list[dict[str, Any]] = field(default_factory=list)  # deletion/insertion curve per tile × method × layer


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
    pool: Any = None,
) -> StudyResult:
    """Run the study over scenes; see :func:`evaluate_scenes`. ``keep_going`` collects per-scene errors.

    ``progress(index, count, scene name, tiles, megapixels)`` is called when a scene starts and returns
    a callback taking the number of tiles done (the same protocol as explain's). ``pool``: a
    :class:`~segxai_cli.workers.pool.WorkerPool` whose workers each load the model and study whole
    scenes; their rows are merged in the order of the inputs, so the report is the same as here.
    """
    t0 = time.perf_counter()
    cfg = (config or StudyConfig()).validate()
    sources = scene_sources(inputs)
    if max_tiles is not None and max_tiles < 1:
        raise UsageError(f"--max-tiles {max_tiles}: must be at least 1")
    mask_map = match_masks(sources, _as_list(masks)) if masks is not None else {s: None for s in sources}
    if pool is not None:
        result = _run_pooled(pool, sources, mask_map, masks is not None, model, cfg, bidx, max_tiles, keep_going, progress)
        result.seconds = time.perf_counter() - t0
        return result
    scene = study_setup(model, cfg, bidx, device)
    result = StudyResult(model=scene.model, sanity_groups=scene.sanity_groups)
    for i, source in enumerate(sources, 1):
        start = (lambda name, n, mp, i=i: progress(i, len(sources), name, n, mp)) if progress else None
        try:
            _add(result, study_task(scene, source, mask_map[source], masks is not None, max_tiles, start=start))
        except SegxaiError as exc:
            if not keep_going:
                raise
            result.errors.append((str(source), str(exc)))
    result.seconds = time.perf_counter() - t0
    return result


def _as_list(items: Any) -> list:
    return [items] if isinstance(items, (str, RasterSource)) or hasattr(items, "__fspath__") else list(items)


def study_setup(model: Any, cfg: StudyConfig, bidx: Sequence[int] | None, device: Any) -> "_SceneStudy":
    """Load the model and check the options against it (the class is resolved in ``cfg``)."""
    from segxai_cli.cam.engine import layer_refs
    from segxai_cli.cam.registry import layer_free
    from segxai_cli.device import resolve_device
    from segxai_cli.model.checkpoint import load_model, require_band_stats
    from segxai_cli.model.families import as_adapter

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
    randomizer = None
    if cfg.sanity:
        from segxai_cli.evaluation.sanity import Randomizer

        randomizer = Randomizer(net, cfg.seed)
    return _SceneStudy(net, info, cfg, stats, bands, dev, randomizer)


def _describe(study: "_SceneStudy") -> tuple[Any, dict, list]:
    return study.cfg.target_class, study.model, study.sanity_groups


def study_task(study: "_SceneStudy", source: RasterSource, mask, masks_given: bool, max_tiles, attempt: int = 1,
               start=None):
    """One scene (here or on a worker) → its rows, summary, forwards taken, curves and sanity rows."""
    before = list(study.counter)
    rows, summary = study.run(source, mask, masks_given, max_tiles, start)
    return rows, summary, [a - b for a, b in zip(study.counter, before)], study.curves, study.sanity_rows


def _add(result: StudyResult, value) -> None:
    """Add one scene's :func:`study_task` value to the run's result."""
    rows, summary, counter, curves, sanity = value
    result.rows.extend(rows)
    result.scenes.append(summary)
    result.curves.extend(curves)
    result.sanity_rows.extend(sanity)
    result.forwards += counter[0]
    result.deduplicated += counter[1]


def _run_pooled(pool, sources, mask_map, masks_given, model, cfg, bidx, max_tiles, keep_going, progress) -> StudyResult:
    """Scenes as tasks on the pool's workers; results kept in the order of the inputs."""
    from functools import partial

    from segxai_cli.workers.pool import Task

    try:
        cfg.target_class, model_info, groups = pool.start(partial(study_setup, model, cfg, bidx), _describe)[0]
        ticks: dict[int, Any] = {}
        if progress is not None:
            pool.on_dispatch = lambda t: ticks.setdefault(t.key, progress(t.key + 1, len(sources), sources[t.key].name, 1, 0.0))
        for i, source in enumerate(sources):
            pool.submit(Task(i, study_task, (source, mask_map[source], masks_given, max_tiles)))
        done = {}
        for d in pool.results():
            done[d.task.key] = d
            if d.task.key in ticks:
                ticks.pop(d.task.key)(1)
            if d.error is not None and not (keep_going and isinstance(d.error, SegxaiError)):
                raise d.error
    finally:
        pool.close()
    result = StudyResult(model=model_info, sanity_groups=groups)
    for i, source in enumerate(sources):
        if done[i].error is not None:
            result.errors.append((str(source), str(done[i].error)))
            continue
        _add(result, done[i].value)
    return result


class _SceneStudy:
    """Reads a scene's tiles (and mask) batch by batch and evaluates them."""

    def __init__(self, net, info, cfg: StudyConfig, stats, bands, dev, randomizer) -> None:
        self.net, self.info, self.cfg, self.stats = net, info, cfg, stats
        self.bands, self.dev, self.randomizer = bands, dev, randomizer
        self.tile = int(info.tile_size)
        self.counter = [0, 0]
        self.sanity_rows: list[dict[str, Any]] = []
        self.curves: list[dict[str, Any]] = []
        self.model = {"file": info.path, "sha256": info.sha256, "arch": info.label}
        self.sanity_groups = ([{"step": i + 1, "group": g.name, "modules": len(g.modules), "parameters": randomizer.params(i)}
                               for i, g in enumerate(randomizer.groups)] if randomizer is not None else [])

    def run(self, source: RasterSource, mask: RasterSource | None, masks_given: bool, max_tiles, start):
        from segxai_cli.raster.reader import check_bands, open_raster, open_raster_quiet
        from segxai_cli.tiling.grid import TileGrid

        if masks_given and mask is None:
            raise InputError(f"{source}: no mask {source.stem}_mask.tif found in --masks")
        rows: list[dict[str, Any]] = []
        self.sanity_rows, self.curves = [], []
        skipped = 0
        objects = self.objects = None
        with open_raster(source) as src:
            check_bands(src, self.bands)
            msk = open_raster_quiet(mask) if mask is not None else None
            try:
                if msk is not None:
                    check_mask_grid(src, msk)
                if self.cfg.vector is not None:
                    objects = self._objects(src, source)
                    windows = [o.window for o in objects][:max_tiles]
                else:
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
                   "target_source": "object" if objects is not None else ("ground_truth" if mask else "prediction"),
                   "tiles": len(windows), "skipped_nodata_tiles": skipped}
        if objects is not None:
            summary["objects"] = len(windows)
            summary["clipped_objects"] = sum(o.clipped for o in objects[: len(windows)])
        return [{k: r[k] for k in COLUMNS} for r in rows], summary

    def _objects(self, src, source: RasterSource):
        from segxai_cli.evaluation.objects import scene_objects
        from segxai_cli.raster.regions import load_vector

        self.vector = load_vector(self.cfg.vector, src, self.cfg.vector_layer)
        objects = self.objects = scene_objects(self.vector, src.width, src.height, self.tile, self.cfg.feature_id)
        if not objects:
            raise InputError(f"{source}: no feature of {self.cfg.vector} overlaps the scene")
        return objects

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
        explain = None
        if self.objects is not None:
            from segxai_cli.evaluation.objects import object_targets

            target = explain = torch.from_numpy(object_targets(self.vector, [self.objects[i] for i in ids], self.tile)).to(self.dev)
        keep = region.flatten(1).any(1)
        sel = keep.nonzero().flatten().tolist()
        if not sel:
            return len(ids)
        if len(sel) < len(ids):
            images, region, valid = images[sel], region[sel], valid[sel]
            target = target[sel] if target is not None else None
            explain = explain[sel] if explain is not None else None
        tiles = TileTensors(images, region, target, valid, explain)
        out: dict[str, Any] = {}
        batch_curves: list[dict[str, Any]] = []
        per_tile = evaluate_batch(self.net, tiles, self.cfg, self.cfg.target_class, self.stats, None, self.counter,
                                  maps_out=out if self.randomizer is not None else None, curves=batch_curves)
        self.curves.extend({**c, "scene": source.stem, "tile": ids[sel[c["tile"]]]} for c in batch_curves)
        per_sanity = self._sanity(tiles, out, [ids[i] for i in sel]) if self.randomizer is not None else [[] for _ in sel]
        for i, trows, srows in zip(sel, per_tile, per_sanity):
            win = wins[i]
            ident = {"scene": source.stem, "tile": ids[i], "object": self.objects[ids[i]].name if self.objects else None}
            full = {(r["method"], r["layer"]): r["spearman"] for r in srows
                    if r["test"] == "cascade" and r["step"] == len(self.randomizer.groups)} if srows else {}
            for r in trows:
                rows.append({**r, "row_off": int(win.row_off), "col_off": int(win.col_off), **ident,
                             "target_source": "object" if self.objects else r["target_source"],
                             "sanity_spearman": full.get((r["method"], r["layer"]), r["sanity_spearman"])})
            self.sanity_rows.extend({**r, **ident} for r in srows)
        return len(ids) - len(sel)

    def _sanity(self, tiles: TileTensors, out: dict[str, Any], tile_ids: list[int]) -> list[list[dict[str, Any]]]:
        """The randomisation test of one batch (its last cascade step fills ``sanity_spearman``);
        with ``sanity_tiles`` only on the scene's first tiles."""
        from segxai_cli.evaluation.sanity import sanity_rows

        limit = self.cfg.sanity_tiles
        pick = [k for k, t in enumerate(tile_ids) if limit is None or t < limit]
        per_tile: list[list[dict[str, Any]]] = [[] for _ in tile_ids]
        if not pick:
            return per_tile
        idx = torch.tensor(pick, device=tiles.images.device)
        maps = {layer: {m: v[idx] for m, v in ms.items()} for layer, ms in out["maps"].items()}
        for k, rows in zip(pick, sanity_rows(self.randomizer, tiles.images[idx], maps, out["explain"][idx],
                                             tiles.region[idx], self.cfg, self.cfg.target_class)):
            per_tile[k] = rows
        return per_tile


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

"""One scene's life: existing outputs → open and check the input → pipeline → publish → record.

Nothing appears under a final name before it is complete, and the record — the proof that a scene
is complete, read by ``--skip-existing`` — is written last.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import rasterio
import torch

from segxai_cli.errors import InputError, OutputError
from segxai_cli.explain.options import ExplainOptions, RegionSpec
from segxai_cli.explain.outputs import SCENE_OUTPUTS, SceneContext
from segxai_cli.explain.pipeline import PipelineConfig, ScenePipeline
from segxai_cli.explain.records import is_complete, write_record
from segxai_cli.explain.results import OutputPaths, SceneResult
from segxai_cli.files import remove_stale_temps
from segxai_cli.model.adapter import ModelAdapter
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.reader import NoCRSWarning, open_raster
from segxai_cli.raster.regions import MaskRegion, RegionSource, RegionWarning, bbox_region, load_vector
from segxai_cli.raster.source import RasterSource

log = logging.getLogger("segxai")

GDAL_CACHE_MB = 128


@dataclass
class Explainer:
    """A loaded model with its bound options: everything that is the same for every scene of a run."""

    adapter: ModelAdapter
    info: ModelInfo
    opts: ExplainOptions  # bound (see options.bind_options)
    device: torch.device
    # progress(index, count, scene name, windows, megapixels) when a scene starts -> advance(n windows)
    progress: Optional[Callable[[int, int, str, int, float], Callable[[int], None]]] = None
    key: str = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.opts.key(self.info.sha256)

    @property
    def model_record(self) -> dict[str, Any]:
        info = self.info
        return {"path": Path(info.path).name if info.path else None, "sha256": info.sha256, "family": info.family,
                "arch": info.arch, "encoder": info.encoder, "classes": info.class_names, "tile_size": info.tile_size}

    def pipeline_config(self) -> PipelineConfig:
        o = self.opts
        return PipelineConfig(
            tile=o.tile_size, overlap=o.overlap_px, bidx=o.bands, stats=self.info.band_stats,
            n_classes=self.info.n_classes, methods=o.methods, layers=o.layers, target_class=o.target_class,
            normalize=o.normalize, use_probs=o.use_probs, autocast=o.autocast, batch_size=o.batch_size,
            device=self.device, method_opts=o.blackbox.opts(),
        )

    # ---------------------------------------------------------------- one scene
    def scene(self, source: RasterSource, outdir: Path, *, overwrite: bool = False,
              skip_existing: bool = False, position: tuple[int, int] = (1, 1)) -> SceneResult:
        """Explain one scene into ``outdir``; user errors raise :class:`~segxai_cli.errors.SegxaiError`."""
        # GDAL's block cache defaults to 5 % of the RAM and would fill with input blocks as the scene is
        # read: capped (globally, restored afterwards) so that memory does not grow with the scene size.
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
            t0 = time.perf_counter()
            paths = OutputPaths.for_stem(outdir, source.stem)
            result = SceneResult(source, "done", outputs=paths)
            if self._existing(paths, result, overwrite, skip_existing):
                return result
            crs, width, height = self._run(source, paths, result, position)
            result.seconds = time.perf_counter() - t0
            write_record(paths, source, result, self.opts, self.model_record, self.key, crs, width, height)
        log.info("%s: %d tiles (%d computed) in %.1f s, %.2f MP/s -> %s", source, result.stats.tiles,
                 result.stats.tiles_computed, result.seconds, result.megapixels_per_s or 0.0, paths.saliency)
        return result

    def _existing(self, paths: OutputPaths, result: SceneResult, overwrite: bool, skip_existing: bool) -> bool:
        """Refuse / skip complete / redo incomplete outputs; True when the scene is skipped."""
        existing = [p for p in paths.all() if p.exists()]
        if existing and not overwrite:
            if not skip_existing:
                raise OutputError(
                    f"{existing[0]}: exists (use --overwrite to replace, or --skip-existing to skip complete scenes)"
                )
            rec = is_complete(paths)
            if rec is not None:
                if rec.get("options_key") != self.key:
                    raise OutputError(
                        f"{paths.saliency}: exists from a run with other options or another model; "
                        "use --overwrite to replace it or another output folder"
                    )
                result.status = "skipped"
                log.info("%s: complete outputs exist, skipped", result.input)
                return True
            log.info("%s: incomplete outputs from an interrupted run, redoing", result.input)
        for final in paths.all():
            remove_stale_temps(final)
        paths.record.unlink(missing_ok=True)  # the completion marker goes before anything is replaced
        return False

    def _run(self, source: RasterSource, paths: OutputPaths, result: SceneResult,
             position: tuple[int, int]) -> tuple[Any, int, int]:
        """Pipeline and publication of the rasters; returns the scene's (crs, width, height)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NoCRSWarning)
            src = open_raster(source)
        for w in caught:
            _warn(result, str(w.message), w.category)
        with src:
            self._check_scene(src, source, result)
            width, height, crs, transform = src.width, src.height, src.crs, src.transform
            region = self._region(src, source, result)
        scene = SceneContext(source, paths.record.parent, self.info, self.opts, width, height, crs, transform)
        outputs = [kind(scene) for kind in SCENE_OUTPUTS]

        def sink(row0, saliency, prediction) -> None:
            for out in outputs:
                out.write(row0, saliency, prediction)

        pipe = ScenePipeline(source, self.adapter, self.pipeline_config(), width, height, region, sink)
        if self.progress is not None:
            pipe.progress = self.progress(*position, source.name, len(pipe.grid), width * height / 1e6)
        try:
            for out in outputs:
                out.open()
            stats = pipe.run()
            if stats.valid_pixels == 0:
                raise InputError(f"{source}: no valid pixels (the scene is entirely nodata); nothing written")
            for out in outputs:
                result.published.update(out.publish(stats))
        except BaseException:
            for out in outputs:
                out.abort()
            raise
        result.mean_saliency = result.published.pop("mean_saliency", {})
        result.stats = stats
        if stats.tiles_empty_region:
            log.info("%s: %d tile(s) had an empty target region (zero saliency there)", source, stats.tiles_empty_region)
        return crs, width, height

    def _check_scene(self, src, source: RasterSource, result: SceneResult) -> None:
        info, opts = self.info, self.opts
        bad = [b for b in opts.bands if b < 1 or b > src.count]
        if bad:
            raise InputError(
                f"{source}: has {src.count} band(s) but the model takes {info.in_channels} "
                f"(bands {','.join(map(str, opts.bands))}); select {info.in_channels} of its bands with -b/--bidx"
            )
        if info.source_dtype and src.dtypes[0] != info.source_dtype:
            _warn(result, f"{source}: scene is {src.dtypes[0]} but the model was trained on {info.source_dtype} "
                          "imagery; results may be meaningless")

    def _region(self, src, source: RasterSource, result: SceneResult) -> Optional[RegionSource]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RegionWarning)
            region = region_source(self.opts.region, src, source)
        for w in caught:
            _warn(result, str(w.message), RegionWarning)
        if region is not None and hasattr(region, "any_in_scene") and not region.any_in_scene(src.width, src.height):
            _warn(result, f"{source}: no {region.describe()} geometry overlaps the scene; saliency is all zero",
                  RegionWarning)
        return region


def region_source(spec: RegionSpec, src, source: RasterSource) -> Optional[RegionSource]:
    """The per-scene region reader of a :class:`RegionSpec` (None = the predicted mask)."""
    if spec.kind == "mask":
        return MaskRegion(spec.location.replace("{stem}", source.stem), src)
    if spec.kind == "vector":
        return load_vector(spec.location, src, spec.layer)
    if spec.kind == "bbox":
        return bbox_region(spec.bbox, src)
    return None


def _warn(result: SceneResult, msg: str, category: type[Warning] = UserWarning) -> None:
    """Record a warning in the result and emit it (the CLI shows warnings as one log line)."""
    result.warnings.append(msg)
    warnings.warn(msg, category, stacklevel=3)

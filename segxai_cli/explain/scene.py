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
from segxai_cli.explain.destination import Destination
from segxai_cli.explain.options import ExplainOptions, RegionSpec
from segxai_cli.explain.outputs import SCENE_OUTPUTS, SceneContext
from segxai_cli.explain.pipeline import PipelineConfig, ScenePipeline
from segxai_cli.explain.records import write_record
from segxai_cli.explain.results import OutputPaths, SceneResult
from segxai_cli.faults import fault_point
from segxai_cli.files import remove_stale_temps, write_error
from segxai_cli.model.adapter import ModelAdapter
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.reader import NoCRSWarning, open_raster, resolve_bands
from segxai_cli.raster.regions import MaskRegion, RegionSource, RegionWarning, bbox_region, load_vector
from segxai_cli.raster.source import RasterSource, read_options

log = logging.getLogger("segxai")



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

    def pipeline_config(self, bidx=None) -> PipelineConfig:
        o = self.opts
        return PipelineConfig(
            tile=o.tile_size, overlap=o.overlap_px, bidx=bidx or o.bands, stats=self.info.band_stats,
            n_classes=self.info.n_classes, methods=o.methods, layers=o.layers, target_class=o.target_class,
            normalize=o.normalize, use_probs=o.use_probs, autocast=o.autocast, batch_size=o.batch_size,
            device=self.device, clip=o.region.clip, method_opts=o.blackbox.opts(),
        )

    # ---------------------------------------------------------------- one scene
    def scene(self, source: RasterSource, outdir: "Path | str | Destination", *, overwrite: bool = False, skip_existing: bool = False,
              position: tuple[int, int] = (1, 1), region: Optional[RegionSource] = None) -> SceneResult:
        """Explain one scene into ``outdir`` (a folder or ``s3://…``); user errors raise :class:`~segxai_cli.errors.SegxaiError`.

        ``region``: the region reader to use instead of the options' (per-feature runs pass one feature).
        With ``--per-feature`` the scene becomes one explanation per vector feature
        (:mod:`segxai_cli.explain.features`), returned as the result's ``parts``.

        All outputs are finalized (made and checked under temp names) before any is committed
        (renamed); the record is written last. Any failure — a full disk, a signal — removes the temp
        files and whatever this scene had already committed: nothing of a failed scene stays under a
        final name, and a rerun redoes it.
        """
        if self.opts.region.per_feature and region is None:
            from segxai_cli.explain.features import explain_features

            return explain_features(self, source, outdir, overwrite=overwrite, skip_existing=skip_existing,
                                    position=position)
        # GDAL's block cache defaults to 5 % of the RAM and would fill with input blocks as the scene is
        # read: capped (globally, restored afterwards) so that memory does not grow with the scene size.
        # Network sources get GDAL's HTTP settings for the scene (raster.sources.remote.read_options).
        dest = Destination.of(outdir)
        outdir = dest.folder
        with rasterio.Env(**self.read_env(source)):
            t0 = time.perf_counter()
            paths = OutputPaths.for_stem(outdir, source.stem)
            result = SceneResult(source, "done", outputs=paths)
            if self._existing(paths, result, overwrite, skip_existing, dest):
                return result
            scene, region = self._open(source, outdir, result, region)
            outputs = [kind(scene) for kind in SCENE_OUTPUTS]
            try:
                stats = self._compute(scene, region, outputs, position)
            except BaseException:
                for out in outputs:
                    out.abort()
                raise
            self.publish(scene, outputs, stats, result, t0, dest)
        if stats.tiles_empty_region:
            log.info("%s: %d tile(s) had an empty target region (zero saliency there)", source, stats.tiles_empty_region)
        log.info("%s: %d tiles (%d computed) in %.1f s, %.2f MP/s -> %s", source, stats.tiles, stats.tiles_computed,
                 result.seconds, result.megapixels_per_s or 0.0, paths.saliency)
        return result

    def publish(self, scene: SceneContext, outputs: list, stats, result: SceneResult, t0: float,
                dest: Optional[Destination] = None) -> None:
        """Finalize every output, commit them all, write the record (then upload them all to a remote
        ``dest``); a failure undoes all of it."""
        committed: list[Path] = []
        try:
            if stats.valid_pixels == 0:
                raise InputError(f"{scene.source}: no valid pixels (the scene is entirely nodata); nothing written")
            for out in outputs:
                result.published.update(out.finalize(stats))
            for out in outputs:
                committed += out.commit()
            result.mean_saliency = result.published.pop("mean_saliency", {})
            result.stats = stats
            result.seconds = time.perf_counter() - t0
            self._record(result.outputs, scene.source, result, scene)
            if dest is not None and dest.remote:
                dest.publish(committed + [result.outputs.record])
                result.location = dest.uri
        except BaseException:
            for out in outputs:
                out.abort()
            for p in committed:
                p.unlink(missing_ok=True)
            raise

    def read_env(self, source: RasterSource) -> dict:
        """GDAL settings for reading this scene (block cache, and HTTP settings for network sources)."""
        window = self.opts.tile_size ** 2 * len(self.opts.bands) * 4
        return read_options(bool(source.remote_prefixes()), window)

    def _existing(self, paths: OutputPaths, result: SceneResult, overwrite: bool, skip_existing: bool,
                  dest: Optional[Destination] = None) -> bool:
        """Refuse / skip complete / redo incomplete outputs; True when the scene is skipped."""
        dest = dest if dest is not None else Destination.of(paths.record.parent)
        existing = [p for p in paths.all() if dest.exists(p)]
        if existing and not overwrite:
            if not skip_existing:
                raise OutputError(
                    f"{dest.location(existing[0])}: exists (use --overwrite to replace, or --skip-existing to skip complete scenes)"
                )
            rec = dest.complete(paths.all(), paths.record)
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
        dest.remove(paths.record)  # the completion marker goes before anything is replaced
        return False

    def _record(self, paths: OutputPaths, source: RasterSource, result: SceneResult, scene: SceneContext) -> None:
        try:
            fault_point("record")
            write_record(paths, source, result, self.opts, self.model_record, self.key, scene.crs,
                         scene.width, scene.height, scene.bands)
        except OSError as exc:
            raise write_error(paths.record, exc) from None

    def _open(self, source: RasterSource, outdir: Path, result: SceneResult, region: Optional[RegionSource],
              with_region: bool = True):
        """Open and check the input; → the scene as the outputs see it, and its region reader (unless
        ``with_region`` is False: publishing the blocks of a split scene needs none)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NoCRSWarning)
            src = open_raster(source)
        for w in caught:
            _warn(result, str(w.message), w.category)
        with src:
            bidx = self._check_scene(src, source, result)
            if region is None and with_region:
                region = self._region(src, source, result)
            scene = SceneContext(source, outdir, self.info, self.opts, src.width, src.height, src.crs, src.transform,
                                 bands=tuple(bidx))
        return scene, region

    def _compute(self, scene: SceneContext, region, outputs, position: tuple[int, int] = (1, 1),
                 rows: Optional[tuple[int, int]] = None):
        """Open the outputs and stream the pipeline's strips into them; → the scene statistics.
        ``rows=(y0, y1)``: only those rows, into pieces (a block of a split scene: explain/split.py)."""

        def sink(row0, saliency, prediction) -> None:
            for out in outputs:
                out.write(row0, saliency, prediction)

        pipe = ScenePipeline(scene.source, self.adapter, self.pipeline_config(scene.bands), scene.width, scene.height,
                             region, sink, rows=rows)
        if self.progress is not None:
            pipe.progress = self.progress(*position, scene.source.name, len(pipe.grid), scene.width * scene.height / 1e6)
        for out in outputs:
            out.open(rows)
        return pipe.run()

    def _check_scene(self, src, source: RasterSource, result: SceneResult) -> list[int]:
        """Bands and data type against the model; → the scene's band numbers (names resolved)."""
        info, opts = self.info, self.opts
        bidx = resolve_bands(src, opts.bands, str(source))
        bad = [b for b in bidx if b < 1 or b > src.count]
        if bad:
            raise InputError(
                f"{source}: has {src.count} band(s) but the model takes {info.in_channels} "
                f"(bands {','.join(map(str, opts.bands))}); select {info.in_channels} of its bands with -b/--bidx"
            )
        if info.source_dtype and src.dtypes[0] != info.source_dtype:
            _warn(result, f"{source}: scene is {src.dtypes[0]} but the model was trained on {info.source_dtype} "
                          "imagery; results may be meaningless")
        return bidx

    def _region(self, src, source: RasterSource, result: SceneResult) -> Optional[RegionSource]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RegionWarning)
            region = region_source(self.opts.region, src, source)
        for w in caught:
            _warn(result, str(w.message), RegionWarning)
        if region is not None and hasattr(region, "any_in_scene") and not region.any_in_scene(src.width, src.height):
            b = src.bounds
            hint = " (is it in another CRS? give --bbox-crs)" if self.opts.region.kind == "bbox" else ""
            raise InputError(f"{source}: the {region.describe()} region does not overlap the scene "
                             f"({b.left!r}, {b.bottom!r}, {b.right!r}, {b.top!r} in {src.crs}){hint}")
        return region


def region_source(spec: RegionSpec, src, source: RasterSource) -> Optional[RegionSource]:
    """The per-scene region reader of a :class:`RegionSpec` (None = the predicted mask)."""
    if spec.kind == "mask":
        return MaskRegion(spec.location.replace("{stem}", source.stem), src)
    if spec.kind == "vector":
        return load_vector(spec.location, src, spec.layer)
    if spec.kind == "bbox":
        return bbox_region(spec.bbox, src, spec.bbox_crs)
    return None


def _warn(result: SceneResult, msg: str, category: type[Warning] = UserWarning) -> None:
    """Record a warning in the result and emit it (the CLI shows warnings as one log line)."""
    result.warnings.append(msg)
    warnings.warn(msg, category, stacklevel=3)

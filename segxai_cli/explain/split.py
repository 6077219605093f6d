"""One scene larger than one worker: its rows cut into blocks that several workers explain at once.

Three steps, each a task a worker runs with its loaded model (:mod:`segxai_cli.explain.executors.pool`):

1. :func:`plan_split` — the checks of a whole-scene run (existing outputs, the input, its region)
   and the blocks: bands of rows cut at window-row tops (:meth:`~segxai_cli.tiling.grid.TileGrid.row_bands`).
2. :func:`run_block` — the pipeline over one block's rows. It computes every window that touches
   them, also the windows above the block that overlap it, so each row blends exactly the windows
   (with exactly the weights) of a whole-scene run; it writes the block's raw blended rows into
   temp *pieces* of each output and returns its statistics (min / max / float64 sum / counts).
3. :func:`finish_split` — the statistics merged exactly, the pieces adopted by each output and
   published as in a whole-scene run: the scene-level min-max is applied while the COG is made from
   the stacked pieces (a VRT), the record is written last.

The result equals a whole-scene run up to float rounding (batches are grouped differently, and
float64 sums are added in another order). The output folder must be one that every worker sees
(a shared file system), as for any multi-machine run.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import rasterio

from segxai_cli.explain.outputs import SCENE_OUTPUTS
from segxai_cli.explain.pipeline import SceneStats
from segxai_cli.explain.results import OutputPaths, SceneResult
from segxai_cli.explain.scene import Explainer
from segxai_cli.files import remove_stale_temps
from segxai_cli.raster.source import RasterSource
from segxai_cli.tiling.grid import TileGrid

log = logging.getLogger("segxai")

SUMMED = ("tiles", "tiles_computed", "tiles_nodata", "tiles_outside_region", "tiles_empty_region", "valid_pixels",
          "computed_pixels", "class_pixels", "counted_pixels", "compute_seconds", "read_wait_seconds",
          "write_wait_seconds")


@dataclass(frozen=True)
class SplitPlan:
    """A scene cut into blocks of rows ``(y0, y1)``; ``started`` is wall-clock time (workers differ)."""

    source: RasterSource
    outdir: Path
    width: int
    height: int
    blocks: tuple[tuple[int, int], ...]
    started: float
    warnings: tuple[str, ...] = ()


@dataclass
class BlockResult:
    index: int
    stats: SceneStats
    pieces: list = field(default_factory=list)  # per output kind: its writers' pieces


def _env(explainer: Explainer, source: RasterSource):
    """The scene's GDAL settings (block cache; HTTP settings for network sources), as a whole-scene run."""
    return rasterio.Env(**explainer.read_env(source))


def plan_split(explainer: Explainer, source: RasterSource, outdir: Path, blocks: int, *, min_pixels: int = 0,
               overwrite: bool = False, skip_existing: bool = False) -> Union[SplitPlan, SceneResult]:
    """Check the scene as a whole-scene run would and cut it into up to ``blocks`` blocks (one when it
    has fewer than ``min_pixels`` pixels); a skipped scene's result instead when it is complete."""
    with _env(explainer, source):
        paths = OutputPaths.for_stem(outdir, source.stem)
        result = SceneResult(source, "done", outputs=paths)
        if explainer._existing(paths, result, overwrite, skip_existing):
            return result
        scene, _ = explainer._open(source, outdir, result, None)
    o = explainer.opts
    n = blocks if scene.width * scene.height >= min_pixels else 1
    bands = TileGrid(scene.width, scene.height, o.tile_size, o.overlap_px).row_bands(n)
    return SplitPlan(source, outdir, scene.width, scene.height, tuple(bands), time.time(), tuple(result.warnings))


def run_block(explainer: Explainer, plan: SplitPlan, index: int) -> BlockResult:
    """Explain block ``index`` into temp pieces of every output; → its statistics and pieces."""
    rows = plan.blocks[index]
    with _env(explainer, plan.source), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the plan and the finish report the scene's warnings
        scene, region = explainer._open(plan.source, plan.outdir, SceneResult(plan.source, "done"), None)
        outputs = [kind(scene) for kind in SCENE_OUTPUTS]
        try:
            stats = explainer._compute(scene, region, outputs, rows=rows)
            pieces = [out.pieces() for out in outputs]
        except BaseException:
            for out in outputs:
                out.abort()
            raise
    log.info("%s: block %d/%d (rows %d-%d) done", plan.source, index + 1, len(plan.blocks), *rows)
    return BlockResult(index, stats, pieces)


def finish_split(explainer: Explainer, plan: SplitPlan, blocks: Sequence[BlockResult]) -> SceneResult:
    """Merge the blocks' statistics, publish their pieces as the scene's outputs, write the record."""
    t0 = time.perf_counter() - (time.time() - plan.started)
    blocks = sorted(blocks, key=lambda b: b.index)
    paths = OutputPaths.for_stem(plan.outdir, plan.source.stem)
    result = SceneResult(plan.source, "done", outputs=paths)
    with _env(explainer, plan.source), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scene, _ = explainer._open(plan.source, plan.outdir, SceneResult(plan.source, "done"), None, with_region=False)
        result.warnings = list(plan.warnings)
        outputs = [kind(scene) for kind in SCENE_OUTPUTS]
        try:
            for i, out in enumerate(outputs):
                out.adopt([b.pieces[i] for b in blocks])
        except BaseException:
            for out in outputs:
                out.abort()
            raise
        explainer.publish(scene, outputs, merge_stats([b.stats for b in blocks]), result, t0)
    for final in paths.all():
        remove_stale_temps(final)  # pieces of attempts whose worker died (on this machine)
    log.info("%s: %d blocks in %.1f s -> %s", plan.source, len(blocks), result.seconds, paths.saliency)
    return result


def discard(blocks: Sequence[BlockResult]) -> None:
    """Remove the pieces of a split scene that will not be published (a block failed)."""
    for b in blocks:
        for kind in b.pieces:
            for piece in kind:
                Path(piece.path).unlink(missing_ok=True)


def merge_stats(parts: Sequence[SceneStats]) -> SceneStats:
    """The statistics of the whole scene from its blocks': counts and float64 sums added (``fsum``),
    minima and maxima of the blocks that counted pixels; the mean is the merged sum over the count."""
    out = SceneStats(width=parts[0].width, height=parts[0].height)
    for name in SUMMED:
        setattr(out, name, sum(getattr(p, name) for p in parts))
    out.seconds = max(p.seconds for p in parts)
    out.clipped = any(p.clipped for p in parts)
    counted = [p for p in parts if p.counted_pixels]
    n, nan = out.counted_pixels, float("nan")
    bands = range(len(parts[0].minimum))
    out.minimum = [min(p.minimum[b] for p in counted) if counted else nan for b in bands]
    out.maximum = [max(p.maximum[b] for p in counted) if counted else nan for b in bands]
    out.sum_raw = [math.fsum(p.sum_raw[b] for p in counted) for b in bands]
    out.mean_raw = [s / n if n else nan for s in out.sum_raw]
    return out

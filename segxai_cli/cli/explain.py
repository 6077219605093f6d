"""``segxai explain``: scenes of any size in, QGIS-ready saliency and prediction COGs out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

import typer

from segxai_cli.cli.common import DEVICE_HELP, MODEL_HELP, parse_bidx, setup_logging, show_progress
from segxai_cli.errors import SegxaiError

log = logging.getLogger("segxai")

HELP = """Explain a segmentation model on GeoTIFF scenes: one saliency COG (one band per method), a class-raster COG, QGIS styles and a scene record per input, plus a run manifest and CSV.

INPUT: files, folders (their .tif/.tiff) or globs. Exit code 0 when every input succeeded (or was skipped as complete), 1 when some failed (the others are still processed), 2 for usage errors.

\b
Outputs in OUTDIR for input <stem>.tif:
  <stem>_saliency.tif   float32, one band per method, [0,1] per scene, NaN = nodata
  <stem>_saliency.qml   QGIS heatmap style (auto-loaded)
  <stem>_prediction.tif uint8 classes with colour table, 255 = nodata
  <stem>_prediction.qml QGIS paletted style with class names
  <stem>_saliency.json  scene record, written last (= scene complete)
  segxai_manifest.json, segxai_scenes.csv   run summary, rebuilt from all records

\b
Examples:
  segxai explain sample_tiles/scene_01.tif -o out/
  segxai explain scenes/ -o out/ --method gradcam --method hirescam --skip-existing
  segxai explain 'scenes/**/*.tif' -o out/ --shard ${SLURM_ARRAY_TASK_ID}/8 --skip-existing
  segxai explain scene.tif -o out/ --vector buildings.gpkg       # why were *these* objects segmented?
"""


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP, no_args_is_help=True)(explain)


def _warnings_as_log_lines() -> None:
    """Python warnings (no CRS, region outside the scene…) as one ``WARNING: msg`` line on stderr."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        log.warning("%s", message)

    warnings.showwarning = show


def explain(
    inputs: list[str] = typer.Argument(..., metavar="INPUT...", help="GeoTIFF files, folders or globs."),
    outdir: Path = typer.Option(..., "-o", "--outdir", help="Output folder (created if missing)."),
    model: Optional[Path] = typer.Option(None, "-m", "--model", help=MODEL_HELP),
    method: list[str] = typer.Option(
        ["gradcam"], "--method", help="CAM method; repeat or comma-separate; 'all' or 'all-gradient'. Default: gradcam."
    ),
    layer: list[str] = typer.Option(
        [], "--layer", help="Target layer (module path or alias such as decoder.last, decoder.2, bottleneck); "
        "repeat to average several layers. Default: decoder.last. List them with `segxai layers`."
    ),
    target_class: Optional[str] = typer.Option(
        None, "--class", help="Class to explain: index or name from the checkpoint. Default: the checkpoint's target class."
    ),
    bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="1-based input bands, e.g. 1,2,3. Default: the model's."),
    tile_size: Optional[int] = typer.Option(None, "--tile-size", help="Window size in pixels (multiple of 32). Default: the model's."),
    overlap: float = typer.Option(0.25, "--overlap", help="Window overlap as a fraction of the tile (blended with raised-cosine ramps)."),
    normalize: str = typer.Option(
        "scene", "--normalize", help="scene: one min-max per scene (default); tile: per-tile min-max (seams); none: raw values."
    ),
    probs: bool = typer.Option(False, "--probs", help="Explain the class probability instead of the logit."),
    region_mask: Optional[str] = typer.Option(
        None, "--region-mask", help="Explain the pixels of this mask raster (> 0) instead of the prediction; "
        "same grid as the scene; '{stem}' is replaced by the input's name."
    ),
    vector: Optional[Path] = typer.Option(
        None, "--vector", help="Explain the objects of this vector file (GeoJSON, GPKG, Shapefile); reprojected to each scene."
    ),
    vector_layer: Optional[str] = typer.Option(None, "--vector-layer", help="Layer of a multi-layer vector file."),
    bbox: Optional[str] = typer.Option(
        None, "--bbox", help="Explain the pixels in minx,miny,maxx,maxy (scene CRS map coordinates)."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Windows per batch. Default: 16 on CUDA, 4 on CPU."),
    autocast: str = typer.Option("none", "--autocast", help="Mixed precision on the device: none, bf16 or fp16."),
    compress: str = typer.Option("deflate", "--compress", help="COG compression: deflate, zstd, lzw or none."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Skip inputs whose outputs are complete; redo incomplete ones (for reruns and cron)."
    ),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="K/N: process only the K-th of N deterministic parts of the sorted inputs (K from 1)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More logging (-v info, -vv debug)."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors on stderr; no progress bars."),
) -> None:
    setup_logging(verbose, quiet)
    _warnings_as_log_lines()
    if overwrite and skip_existing:
        raise typer.BadParameter("use either --overwrite or --skip-existing, not both", param_hint="--overwrite")
    bbox_vals = None
    if bbox is not None:
        try:
            bbox_vals = [float(v) for v in bbox.replace(" ", "").split(",")]
        except ValueError:
            raise typer.BadParameter(f"{bbox!r}: expected minx,miny,maxx,maxy", param_hint="--bbox") from None
        if len(bbox_vals) != 4:
            raise typer.BadParameter(f"{bbox!r}: expected 4 numbers minx,miny,maxx,maxy", param_hint="--bbox")
    from segxai_cli.explain import explain_scenes, parse_shard

    try:
        parse_shard(shard)
    except SegxaiError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None
    run = explain_scenes(
        inputs, outdir, str(model) if model else None,
        methods=method, layer=layer or None, target_class=target_class, bands=parse_bidx(bidx),
        tile_size=tile_size, overlap=overlap, normalize=normalize, use_probs=probs, region_mask=region_mask,
        vector=vector, vector_layer=vector_layer, bbox=bbox_vals, device=device, batch_size=batch_size,
        autocast=autocast, compress=compress, overwrite=overwrite, skip_existing=skip_existing, shard=shard,
        progress=show_progress(quiet),
    )
    summary = run.summary()
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    if not quiet:
        typer.echo(
            f"segxai explain: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed "
            f"in {summary['seconds']:.1f} s -> {run.outdir}",
            err=True,
        )
    if not run.ok:
        raise typer.Exit(1)

"""``segxai explain``: scenes of any size in, QGIS-ready saliency and prediction COGs out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import Progress, setup_logging

HELP = """Explain a segmentation model on GeoTIFF scenes: a saliency COG (one band per method), a class COG, QGIS styles and a record per scene, plus a run manifest and CSV.

INPUT: files, folders (their .tif/.tiff) or globs. Exit code 0 when every input succeeded (or was skipped as complete), 1 when some failed (the others are still processed), 2 for usage errors.

\b
Outputs in OUTDIR for input <stem>.tif:
  <stem>_saliency.tif    float32, one band per method, [0,1] per scene, NaN = nodata
  <stem>_saliency.qml    QGIS heatmap style (auto-loaded)
  <stem>_prediction.tif  uint8 classes with colour table, 255 = nodata
  <stem>_prediction.qml  QGIS paletted style with class names
  <stem>_saliency.json   scene record, written last (= scene complete)
  segxai_manifest.json, segxai_scenes.csv   run summary, rebuilt from all records

\b
Examples:
  segxai explain sample_tiles/scene_01.tif -o out/
  segxai explain scenes/ -o out/ --method gradcam,hirescam --skip-existing
  segxai explain 'scenes/**/*.tif' -o out/ --shard $SLURM_ARRAY_TASK_ID/8 --skip-existing
  segxai explain scene.tif -o out/ --vector buildings.gpkg
  segxai explain scene.tif -o out/ -m model_onnx.pt --method rise,occlusion
"""


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP, no_args_is_help=True)(explain)


def explain(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT", help="GeoTIFF files, folders or globs.", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="OUTDIR", help="Output folder (created if missing).", show_default=False)],
    model: O.Model = None,
    method: O.Methods = None,
    layer: O.Layers = None,
    target_class: O.TargetClass = None,
    bidx: O.Bidx = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", help="Window size in pixels (a multiple of the model's stride). Default: the model's.", show_default=False)] = None,
    overlap: Annotated[float, typer.Option("--overlap", help="Window overlap as a fraction of the tile (blended with raised-cosine ramps).")] = 0.25,
    normalize: Annotated[str, typer.Option("--normalize", help="scene: one min-max per scene; tile: per-tile min-max (seams); none: raw values.")] = "scene",
    probs: O.Probs = False,
    region_mask: Annotated[Optional[str], typer.Option("--region-mask", help="Explain the pixels of this mask raster (> 0) instead of the prediction; same grid as the scene; '{stem}' is replaced by the input's name.", show_default=False)] = None,
    vector: Annotated[Optional[str], typer.Option("--vector", help="Explain the objects of this vector file (GeoJSON, GPKG, Shapefile); reprojected to each scene.", show_default=False)] = None,
    vector_layer: Annotated[Optional[str], typer.Option("--vector-layer", help="Layer of a multi-layer vector file.", show_default=False)] = None,
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Explain the pixels in minx,miny,maxx,maxy (the scene's map coordinates).", show_default=False)] = None,
    device: O.Device = "auto",
    batch_size: O.BatchSize = None,
    autocast: Annotated[str, typer.Option("--autocast", help="Mixed precision on the device: none, bf16 or fp16.")] = "none",
    compress: Annotated[str, typer.Option("--compress", help="COG compression: deflate, zstd, lzw or none.")] = "deflate",
    overwrite: O.Overwrite = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose outputs are complete; redo incomplete ones (reruns, cron).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="K/N: only the K-th of N deterministic parts of the sorted inputs (K from 1).", show_default=False)] = None,
    json_out: O.Json = False,
    verbose: O.Verbose = 0,
    quiet: O.Quiet = False,
    rise_masks: O.RiseMasks = 2000,
    rise_cells: O.RiseCells = 8,
    rise_p: O.RiseP = 0.5,
    occlusion_window: O.OcclusionWindow = 32,
    occlusion_stride: O.OcclusionStride = 16,
    baseline: O.Baseline = 0.0,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=O.BLACKBOX_PANEL, help="RISE: seed of the masks (same seed, same maps).")] = 0,
) -> None:
    setup_logging(verbose, quiet)
    from segxai_cli.explain.options import resolve_options
    from segxai_cli.explain.run import explain_scenes

    opts = resolve_options(
        methods=method, layer=layer, target_class=target_class, bands=bidx, tile_size=tile_size, overlap=overlap,
        normalize=normalize, use_probs=probs, batch_size=batch_size, device=device, autocast=autocast,
        region_mask=region_mask, vector=vector, vector_layer=vector_layer, bbox=bbox, compress=compress,
        rise_masks=rise_masks, rise_cells=rise_cells, rise_p=rise_p, occlusion_window=occlusion_window,
        occlusion_stride=occlusion_stride, baseline=baseline, seed=seed,
    )
    run = explain_scenes(inputs, output, str(model) if model else None, options=opts, shard=shard,
                         overwrite=overwrite, skip_existing=skip_existing,
                         progress=Progress("scene", quiet=quiet, unit="window"))
    summary = run.summary()
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    if not quiet:
        typer.echo(f"segxai explain: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed "
                   f"in {summary['seconds']:.1f} s -> {run.outdir}", err=True)
    if not run.ok:
        raise typer.Exit(1)

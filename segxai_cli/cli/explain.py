"""``segxai explain``: scenes of any size in, QGIS-ready saliency and prediction COGs out."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import Progress, setup_logging
from segxai_cli.errors import UsageError

HELP = """Explain a segmentation model on raster scenes: a saliency COG (one band per method), a class COG, QGIS styles, a STAC Item and a record per scene, plus a run manifest, CSV and STAC catalog.

INPUT: files, folders (their .tif/.tiff) or globs; https:// and s3:// locations, GDAL /vsi… paths, .vrt mosaics, JP2; STAC Item or ItemCollection JSON (local or remote). OUTDIR: a folder or s3://bucket/prefix. Exit code 0 when every input succeeded (or was skipped as complete), 1 when some failed (the others are still processed), 2 for usage errors.

\b
Outputs in OUTDIR for input <stem>.tif:
  <stem>_saliency.tif    float32, one band per method, [0,1] per scene, NaN = nodata
  <stem>_saliency.qml    QGIS heatmap style (auto-loaded)
  <stem>_prediction.tif  uint8 classes with colour table, 255 = nodata
  <stem>_prediction.qml  QGIS paletted style with class names
  <stem>_saliency_<method>.qml   the style of each method band (for single files)
  <stem>_quicklook.png   input, prediction and every method side by side
  <stem>_quicklook_<method>.png   heatmap over the scene, class outlined, colour bar
  <stem>.stac.json       STAC Item of the outputs (raster + projection extensions)
  <stem>_saliency.json   scene record, written last (= scene complete)
  segxai_manifest.json, segxai_scenes.csv, catalog.json   run summary, rebuilt from all records
  segxai.qgs             QGIS project: a group per scene, methods as a radio group
  report.html            with --report: the run as one web page (segxai report)

\b
Examples:
  segxai explain sample_tiles/scene_01.tif -o out/
  segxai explain scenes/ -o out/ --method gradcam,hirescam --skip-existing
  segxai explain 'scenes/**/*.tif' -o out/ --shard auto --skip-existing   (in a Slurm/Kubernetes/AWS Batch array)
  segxai explain scenes/ -o out/ --devices all          (a worker per GPU of this machine)
  segxai explain scenes/ -o out/ --ray auto --devices all --split auto   (a Ray cluster; huge mosaics split)
  segxai explain scene.tif -o out/ --vector buildings.gpkg
  segxai explain sample_tiles/ -o out/ --method gradcam,hirescam,scorecam --report
  segxai explain https://example.com/cogs/scene.tif -o s3://bucket/explained/
  segxai explain item.json -o out/ --assets B04,B03,B02
  segxai explain --inputs-from scenes.txt -o out/ -b red,green,blue
  segxai explain scene.tif -o out/ -m model_onnx.pt --method rise,occlusion
"""


def register(app: typer.Typer) -> None:
    app.command("explain", help=HELP, no_args_is_help=True)(explain)


def explain(
    inputs: Annotated[Optional[list[str]], typer.Argument(metavar="INPUT", help="Rasters, folders, globs, URLs, s3:// locations or STAC JSON.", show_default=False)] = None,
    output: Annotated[str, typer.Option("-o", "--output", metavar="OUTDIR", help="Output folder (created if missing) or s3://bucket/prefix.", show_default=False)] = "",
    inputs_from: Annotated[Optional[str], typer.Option("--inputs-from", metavar="FILE", help="Read more inputs from FILE: one location a line (any kind), '#' comments; '-' = standard input.", show_default=False)] = None,
    assets: Annotated[Optional[str], typer.Option("--assets", metavar="KEYS", help="STAC inputs: the assets stacked as the scene's bands, in order (e.g. B04,B03,B02).", show_default=False)] = None,
    model: O.Model = None,
    method: O.Methods = None,
    layer: O.Layers = None,
    target_class: O.TargetClass = None,
    bidx: O.Bands = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", help="Window size in pixels (a multiple of the model's stride). Default: the model's.", show_default=False)] = None,
    overlap: Annotated[float, typer.Option("--overlap", help="Window overlap as a fraction of the tile (blended with raised-cosine ramps).")] = 0.25,
    normalize: Annotated[str, typer.Option("--normalize", help="scene: one min-max per scene; tile: per-tile min-max (seams); none: raw values.")] = "scene",
    probs: O.Probs = False,
    region_mask: Annotated[Optional[str], typer.Option("--region-mask", help="Explain the pixels of this mask raster (> 0) instead of the prediction; same grid as the scene; '{stem}' is replaced by the input's name.", show_default=False)] = None,
    vector: Annotated[Optional[str], typer.Option("--vector", help="Explain the objects of this vector file (GeoJSON, GPKG, Shapefile); reprojected to each scene.", show_default=False)] = None,
    vector_layer: Annotated[Optional[str], typer.Option("--vector-layer", help="Layer of a multi-layer vector file.", show_default=False)] = None,
    bbox: Annotated[Optional[str], typer.Option("--bbox", help="Explain the pixels in minx,miny,maxx,maxy (the scene's map coordinates, or --bbox-crs).", show_default=False)] = None,
    bbox_crs: Annotated[Optional[str], typer.Option("--bbox-crs", metavar="CRS", help="CRS of --bbox, e.g. EPSG:4326 for lon/lat (as GDAL's -projwin_srs). Default: each scene's CRS.", show_default=False)] = None,
    clip_to_region: Annotated[Optional[bool], typer.Option("--clip-to-region/--no-clip-to-region", help="With a region (--bbox, --vector, --region-mask): zero the saliency outside it and normalise within it (default), or keep the whole map — what in each window supports the region's score.", show_default=False)] = None,
    per_feature: Annotated[bool, typer.Option("--per-feature", help="With --vector: explain each feature on its own, in a window around it; files <stem>_<feature>_*.")] = False,
    feature_id: Annotated[Optional[str], typer.Option("--feature-id", metavar="ATTR", help="With --per-feature: the attribute that names each feature's files. Default: its position (f0, f1, …).", show_default=False)] = None,
    device: O.Device = "auto",
    batch_size: O.BatchSize = None,
    autocast: Annotated[str, typer.Option("--autocast", help="Mixed precision on the device: none, bf16 or fp16.")] = "none",
    compress: Annotated[str, typer.Option("--compress", help="COG compression: deflate, zstd, lzw or none.")] = "deflate",
    quicklook: Annotated[Optional[bool], typer.Option("--quicklook/--no-quicklook", help="PNG quicklooks per scene and method. Default: for scenes up to 1024 megapixels; --quicklook for any size.", show_default=False)] = None,
    report: O.Report = False,
    overwrite: O.Overwrite = False,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="Skip inputs whose outputs are complete; redo incomplete ones (reruns, cron).")] = False,
    shard: Annotated[Optional[str], typer.Option("--shard", help="K/N: only the K-th of N deterministic parts of the sorted inputs (K from 1); auto: this task's part of a Slurm, Kubernetes (JOB_COMPLETION_INDEX + SEGXAI_SHARD_COUNT) or AWS Batch job array.", show_default=False)] = None,
    ray: O.Ray = None,
    devices: O.Devices = None,
    workers: O.Workers = None,
    split: Annotated[Optional[str], typer.Option("--split", metavar="N", help="Cut each scene into N blocks of rows explained by different workers (one mosaic larger than a worker), or auto: every worker on scenes of 400+ megapixels. Needs --workers, --devices or --ray.", show_default=False)] = None,
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
    from segxai_cli.explain.executors import choose_executor
    from segxai_cli.explain.options import resolve_options
    from segxai_cli.explain.run import explain_scenes
    from segxai_cli.raster.inputs import read_input_list

    if not output:
        raise UsageError("-o/--output OUTDIR is required (a folder or s3://bucket/prefix)")
    inputs = list(inputs or []) + (read_input_list(inputs_from) if inputs_from else [])
    if not inputs:
        raise UsageError("no inputs given (INPUT arguments or --inputs-from FILE)")
    opts = resolve_options(
        methods=method, layer=layer, target_class=target_class, bands=bidx, tile_size=tile_size, overlap=overlap,
        normalize=normalize, use_probs=probs, batch_size=batch_size, device=device, autocast=autocast,
        region_mask=region_mask, vector=vector, vector_layer=vector_layer, bbox=bbox, bbox_crs=bbox_crs,
        clip_to_region=clip_to_region, per_feature=per_feature, feature_id=feature_id, compress=compress,
        quicklook=quicklook,
        assets=assets,
        rise_masks=rise_masks, rise_cells=rise_cells, rise_p=rise_p, occlusion_window=occlusion_window,
        occlusion_stride=occlusion_stride, baseline=baseline, seed=seed,
    )
    progress = Progress("scene", quiet=quiet, unit="window")
    executor = choose_executor(ray, devices, workers, split, progress)
    if executor.name != "local":
        from segxai_cli.workers import check_device_with_pool

        check_device_with_pool(device, devices)
    run = explain_scenes(inputs, output, str(model) if model else None, options=opts, shard=shard,
                         overwrite=overwrite, skip_existing=skip_existing, progress=progress, executor=executor)
    summary = run.summary()
    if report and run.csv is not None:
        from segxai_cli.report import build_report

        summary["report"] = str(build_report(run.outdir))
    if json_out:
        typer.echo(json.dumps(summary, indent=2))
    if not quiet:
        typer.echo(f"segxai explain: {summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed "
                   f"in {summary['seconds']:.1f} s -> {run.outdir}", err=True)
    if not run.ok:
        raise typer.Exit(1)

"""``segxai evaluate`` and ``segxai threshold-sweep``: the faithfulness study on scenes.

Both commands share every option (declared once in :func:`_study_command`); the sweep adds the
best-method tables and runs over a list of thresholds by default. The science and the report live
in :mod:`segxai_cli.evaluation`; this module parses, shows progress and prints tables.
"""


import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import Progress, error, setup_logging
from segxai_cli.errors import SegxaiError, UsageError

MASKS_HELP = ("Ground-truth masks: a folder, a glob or a file; matched to each scene by name <stem>_mask.tif. "
              "Mask nodata and 255 are ignored. Without masks the model's prediction is the target.")
EVALUATE_HELP = """Faithfulness of the explanations, per tile: M1 (background only), M2 (highlighted only) and M3 (highlighted + target) confidence and entropy, IoU change, Dice Explained, Saliency Ratio, PPS/IPS, deletion/insertion AUC.

Writes the tidy CSV (one row per tile × method × layer × threshold × mode), a summary CSV, a PNG plot and a JSON record of the run (options, seed, model checksum, timings). Without --masks the prediction stands in for the target pixels.

\b
Example:
  segxai evaluate sample_tiles --masks sample_tiles -o report.csv --threshold 0.2
"""
SWEEP_HELP = """The evaluation over a list of thresholds (default 0.1…0.5): every metric of `segxai evaluate`, the best method per threshold for M1 (lowest confidence), M2 (highest confidence) and M3 (lowest entropy), and a plot of each metric against the threshold.

\b
Example:
  segxai threshold-sweep sample_tiles --masks sample_tiles -o sweep.csv --layer decoder.last --layer decoder.2
"""


def register(app: typer.Typer) -> None:
    app.command("evaluate", help=EVALUATE_HELP, no_args_is_help=True)(_study_command(sweep=False))
    app.command("threshold-sweep", help=SWEEP_HELP, no_args_is_help=True)(_study_command(sweep=True))


def _study_command(sweep: bool):
    thr_help = ("Thresholds t in [0, 1] (Phi = S ≥ t): repeatable, comma list or start:stop:step. "
                + ("Default 0.1:0.5:0.1." if sweep else "Default 0.5."))

    def command(
        inputs: Annotated[list[str], typer.Argument(metavar="INPUT", help="Scenes: files, folders or quoted globs (*_mask.tif files in folders/globs are masks).", show_default=False)],
        output: Annotated[Path, typer.Option("-o", "--output", metavar="CSV", help="The tidy CSV report; the other files are named after it.", show_default=False)],
        masks: Annotated[Optional[str], typer.Option("--masks", help=MASKS_HELP, show_default=False)] = None,
        model: O.Model = None,
        method: O.Methods = None,
        layer: O.Layers = None,
        threshold: Annotated[Optional[list[str]], typer.Option("--threshold", "--thresholds", help=thr_help, show_default=False)] = None,
        target_class: O.TargetClass = None,
        probs: O.Probs = False,
        fill: Annotated[str, typer.Option("--fill", help="Value for removed pixels: mean (band mean), zero (raw 0) or blur (Gaussian-blurred tile).")] = "mean",
        blur_sigma: Annotated[float, typer.Option("--blur-sigma", help="Sigma in pixels for --fill blur.")] = 8.0,
        curve_steps: Annotated[int, typer.Option("--curve-steps", help="Deletion/insertion curve steps (10: 0, 10, …, 100 %); 0 skips the curves.")] = 10,
        budget: Annotated[Optional[list[str]], typer.Option("--budget", "--budgets", help="Fixed pixel budgets besides the thresholds: Phi = the top fraction of the counted pixels by saliency (0.05, 5%, comma lists); 'none' turns them off. Default 5%,10%,20%.", show_default=False)] = None,
        sanity: Annotated[bool, typer.Option("--sanity", help="Parameter-randomisation sanity check (Adebayo et al.): cascading and independent re-initialisation of the model's layer groups, Spearman/SSIM/HOG similarity of the maps, a pass/fail verdict per method (files <output>_sanity*).")] = False,
        sanity_threshold: Annotated[float, typer.Option("--sanity-threshold", help="--sanity passes when the 95 % upper bound of the mean Spearman similarity to the fully randomised model's maps is below this.")] = 0.5,
        sanity_tiles: Annotated[Optional[int], typer.Option("--sanity-tiles", metavar="N", help="--sanity on the first N tiles of each scene only (it costs 2 × layer groups extra CAM passes per tile). Default: every tile.", show_default=False)] = None,
        bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples (over tiles) for the 95 % confidence intervals and paired tests; 0 skips them.")] = 2000,
        vector: Annotated[Optional[str], typer.Option("--vector", help="Per-object study: each feature of this vector file (GeoJSON, GPKG, Shapefile) is the target of a tile centred on it; rows per object.", show_default=False)] = None,
        vector_layer: Annotated[Optional[str], typer.Option("--vector-layer", help="Layer of a multi-layer vector file.", show_default=False)] = None,
        feature_id: Annotated[Optional[str], typer.Option("--feature-id", metavar="ATTR", help="With --vector: the attribute naming each object in the 'object' column (default f<N>).", show_default=False)] = None,
        seed: Annotated[int, typer.Option("--seed", help="Seed for everything random (tie order, bootstrap, --sanity weights); recorded in the report.")] = 0,
        device: O.Device = "auto",
        batch_size: Annotated[int, typer.Option("--batch-size", help="Tiles per batch (CAMs computed together).")] = 4,
        chunk: Annotated[int, typer.Option("--chunk", help="Reduced images per model forward.")] = 16,
        bidx: O.Bidx = None,
        max_tiles: Annotated[Optional[int], typer.Option("--max-tiles", help="Evaluate at most this many tiles per scene (quick looks).", show_default=False)] = None,
        summary: Annotated[Optional[Path], typer.Option("--summary", help="Summary CSV. Default: <output>_summary.csv.", show_default=False)] = None,
        plot: Annotated[Optional[Path], typer.Option("--plot", help="PNG plot. Default: <output>.png.", show_default=False)] = None,
        best: Annotated[Optional[Path], typer.Option("--best", help="Best-method-per-threshold CSV (sweep only). Default: <output>_best.csv.", show_default=False)] = None,
        overwrite: O.Overwrite = False,
        report: O.Report = False,
        ray: O.Ray = None,
        devices: O.Devices = None,
        workers: O.Workers = None,
        quiet: O.Quiet = False,
        verbose: O.Verbose = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print the summary and run metadata as JSON on stdout instead of tables.")] = False,
        rise_masks: O.RiseMasks = 2000,
        rise_cells: O.RiseCells = 8,
        rise_p: O.RiseP = 0.5,
        occlusion_window: O.OcclusionWindow = 32,
        occlusion_stride: O.OcclusionStride = 16,
        baseline: O.Baseline = 0.0,
    ) -> None:
        setup_logging(verbose, quiet)
        from segxai_cli.cam.blackbox import BlackBoxOptions
        from segxai_cli.evaluation.config import SWEEP_THRESHOLDS, StudyConfig
        from segxai_cli.evaluation.report import check_report_paths, report_paths
        from segxai_cli.options import parse_bands, parse_thresholds

        if best is not None and not sweep:
            raise UsageError("--best: only for threshold-sweep")
        cfg = StudyConfig(
            methods=method or None, layers=layer or None,
            thresholds=parse_thresholds(threshold) or (list(SWEEP_THRESHOLDS) if sweep else [0.5]),
            target_class=target_class, fill=fill, blur_sigma=blur_sigma, curve_steps=curve_steps, sanity=sanity,
            seed=seed, batch_size=batch_size, chunk=chunk, use_probs=probs, budgets=budget or None,
            bootstrap=bootstrap, sanity_threshold=sanity_threshold, sanity_tiles=sanity_tiles, vector=vector, vector_layer=vector_layer,
            feature_id=feature_id,
            blackbox=BlackBoxOptions(rise_masks, rise_cells, rise_p, occlusion_window, occlusion_stride, baseline, seed),
        ).validate()
        bands = parse_bands(bidx)
        workers_given = ray is not None or devices is not None or workers is not None
        if workers_given:
            from segxai_cli.workers import check_device_with_pool, check_pool_options

            check_pool_options(ray, devices, workers)
            check_device_with_pool(device, devices)
        pool = (ray, devices, workers) if workers_given else None
        from segxai_cli.evaluation.run import scene_sources

        scenes = scene_sources(inputs)
        paths = report_paths(output, summary, plot, sweep, best, budgets=bool(cfg.budgets),
                             paired=len(cfg.methods) > 1, scenes=len(scenes) > 1, sanity=cfg.sanity,
                             curves=cfg.curve_steps > 0)
        check_report_paths(paths, overwrite)
        failed = _run(scenes, masks, model, cfg, bands, device, max_tiles, paths, sweep, quiet, as_json, pool)
        if report:
            from segxai_cli.report import build_report

            page = build_report(paths["csv"].parent if str(paths["csv"].parent) else Path("."))
            if not quiet:
                typer.echo(f"  report   {page}", err=True)
        if failed:
            raise typer.Exit(1)

    return command


def _run(inputs, masks, model, cfg, bands, device, max_tiles, paths, sweep: bool, quiet: bool, as_json: bool,
         workers=None) -> bool:
    """Run the study and write its files; True when some scene failed."""
    import torch

    from segxai_cli.evaluation.report import jsonable, write_report
    from segxai_cli.evaluation.run import run_study

    command = "threshold-sweep" if sweep else "evaluate"
    torch.manual_seed(cfg.seed)
    scenes = inputs
    prog = Progress("scene", quiet=quiet, unit="tile")
    try:
        pool = None
        if workers is not None:
            from segxai_cli.workers import make_pool

            pool = make_pool(*workers)
        result = run_study(scenes, masks, str(model) if model else None, config=cfg, bidx=bands, device=device,
                           max_tiles=max_tiles, keep_going=True, progress=prog, pool=pool)
    finally:
        prog.close()
    for scene, msg in result.errors:
        error(msg if msg.startswith(str(scene)) else f"{scene}: {msg}")
    if not result.rows:
        raise SegxaiError("no tiles evaluated" + (" (every scene failed)" if result.errors else " (all tiles are nodata)"))
    report = write_report(result, cfg, paths, command=command, sweep=sweep, device=device)
    if as_json:
        typer.echo(json.dumps(jsonable({"meta": report.meta, "summary": report.summary, "best": report.best,
                                        "paired": report.paired, "scenes": report.scenes,
                                        "sanity": report.sanity, "sanity_verdicts": report.verdicts}), indent=2))
    elif not quiet:
        _print(report, result, cfg, sweep)
    return bool(result.errors)


def _print(report, result, cfg, sweep: bool) -> None:
    from rich.console import Console

    from segxai_cli.evaluation import tables as T
    from segxai_cli.evaluation.summary import budget_rows, threshold_rows

    meta = report.meta
    sources = meta["target_source"]
    err = Console(stderr=True)
    if "prediction" in sources:
        err.print("note: no ground-truth mask for " + ", ".join(s["scene"] for s in result.scenes if s["target_source"] == "prediction")
                  + ": the model's prediction stands in for the target pixels T (target_source=prediction; IoU is against the prediction)")
    if meta["empty_target_rows"]:
        n_tiles = len({(r["scene"], r["tile"]) for r in result.rows if r["empty_target"]})
        err.print(f"note: {n_tiles} tile(s) have no target-class pixels: their rows are marked empty_target=True "
                  "(confidence/entropy NaN) and left out of the summary means")
    if meta["skipped_nodata_tiles"]:
        err.print(f"note: skipped {meta['skipped_nodata_tiles']} all-nodata tile(s)")
    out = Console(width=None if sys.stdout.isatty() else 120)
    for table in T.summary_tables(threshold_rows(report.summary), title=f"T = {'/'.join(sources)}"):
        out.print(table)
    if cfg.budgets:
        out.print(T.budget_table(budget_rows(report.summary), title=f"T = {'/'.join(sources)}"))
    if sweep:
        for x in ("threshold", "budget") if cfg.budgets else ("threshold",):
            for layer in cfg.layers:
                for m in cfg.modes:
                    out.print(T.best_table(report.best[m], m, layer, x))
    if len(cfg.layers) > 1:
        out.print(T.layer_table(report.by_layer))
    if report.verdicts:
        out.print(T.verdict_table(report.verdicts))
    typer.echo(f"{meta['tiles']} tiles x {len(cfg.methods)} method(s) x {len(cfg.layers)} layer(s) x "
               f"{len(cfg.thresholds)} threshold(s) in {meta['seconds']:.1f} s "
               f"({result.forwards} model forwards + CAMs)", err=True)
    for k, p in report.paths.items():
        typer.echo(f"  {k:8s} {p}", err=True)

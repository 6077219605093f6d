"""``segxai evaluate``: the faithfulness study (seed 001: M1/M2/M3, IoU change, ...) on scenes.

The science lives in :mod:`segxai_cli.evaluation`; this module parses options, checks outputs,
shows progress, prints tables and writes the files. :func:`run_command` is shared with
``segxai threshold-sweep``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer

from segxai_cli.cli.common import DEVICE_HELP, MODEL_HELP, error, parse_bidx, setup_logging, show_progress
from segxai_cli.errors import OutputError, SegxaiError

METHOD_HELP = ("CAM method (repeatable, or comma-separated; 'all' for every method). "
               "Default: gradcam, gradcam++, xgradcam, scorecam, eigencam (seed 001's set).")
LAYER_HELP = ("Target layer (repeatable: one set of rows per layer, compared in the summary). Dotted name or "
              "alias (decoder.N, decoder.last, bottleneck); 'a+b' averages the maps of several layers. Default: decoder.last.")
MASKS_HELP = ("Ground-truth masks: a folder, a glob or a file; matched to each scene by name <stem>_mask.tif. "
              "Mask nodata and 255 are ignored. Without masks the model's prediction is the target.")


def parse_thresholds(values: list[str] | None) -> list[float] | None:
    """``--threshold`` values: numbers, comma lists, or ranges ``start:stop:step`` (stop included)."""
    if not values:
        return None
    out: list[float] = []
    for v in values:
        for part in str(v).replace(" ", "").split(","):
            if not part:
                continue
            try:
                if ":" in part:
                    a, b, *s = (float(x) for x in part.split(":"))
                    step = s[0] if s else 0.1
                    if step <= 0:
                        raise ValueError
                    n = int(round((b - a) / step))
                    out.extend(round(a + i * step, 6) for i in range(n + 1))
                else:
                    out.append(float(part))
            except ValueError:
                raise SegxaiError(f"--threshold {v!r}: expected numbers in [0, 1], e.g. 0.5, 0.1,0.2 or 0.1:0.5:0.1") from None
    for t in out:
        if not 0.0 <= t <= 1.0:
            raise SegxaiError(f"--threshold {t:g} is outside [0, 1] (saliency maps are min-max normalised to [0, 1])")
    return out


def split_multi(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return out or None


def output_paths(output: Path, summary: Optional[Path], plot: Optional[Path], best: bool, best_path: Optional[Path]) -> dict[str, Path]:
    stem = output.with_suffix("") if output.suffix.lower() == ".csv" else output
    paths = {
        "csv": output,
        "summary": summary or stem.parent / f"{stem.name}_summary.csv",
        "plot": plot or stem.parent / f"{stem.name}.png",
        "meta": stem.parent / f"{stem.name}.json",
    }
    if best:
        paths["best"] = best_path or stem.parent / f"{stem.name}_best.csv"
    return paths


def check_outputs(paths: dict[str, Path], overwrite: bool) -> None:
    for p in paths.values():
        if not p.parent.is_dir() and str(p.parent) not in ("", "."):
            raise OutputError(f"{p}: folder {p.parent} does not exist")
        if p.exists() and not overwrite:
            raise OutputError(f"{p}: already exists (use --overwrite to replace it)")
    if len(set(paths.values())) != len(paths):
        raise OutputError("two outputs would be written to the same file; choose distinct --summary/--plot paths")


def run_command(
    *, command: str, inputs: list[Path], masks: Optional[str], model: Optional[Path], methods: Optional[list[str]],
    layers: Optional[list[str]], thresholds: list[float], target_class: Optional[str], fill: str, blur_sigma: float,
    curve_steps: int, sanity: bool, seed: int, device: str, batch_size: int, chunk: int, bidx: Optional[str],
    max_tiles: Optional[int], output: Path, summary: Optional[Path], plot: Optional[Path], best_path: Optional[Path],
    overwrite: bool, quiet: bool, verbose: int, as_json: bool, sweep: bool,
) -> None:
    from rich.console import Console

    from segxai_cli.evaluation import report as R
    from segxai_cli.evaluation.study import DEFAULT_LAYERS, DEFAULT_METHODS, StudyConfig, run_study
    from segxai_cli.raster.inputs import expand_paths

    setup_logging(verbose, quiet)
    import torch

    torch.manual_seed(seed)
    paths = output_paths(output, summary, plot, sweep, best_path)
    check_outputs(paths, overwrite)
    scenes, problems = expand_paths(inputs)
    for spec, reason in problems:
        raise SegxaiError(f"{spec}: {reason}")
    if not scenes:
        raise SegxaiError("no input scenes")
    cfg = StudyConfig(
        methods=split_multi(methods) or list(DEFAULT_METHODS), layers=split_multi(layers) or list(DEFAULT_LAYERS),
        thresholds=thresholds, target_class=target_class, fill=fill, blur_sigma=blur_sigma, curve_steps=curve_steps,
        sanity=sanity, seed=seed, batch_size=batch_size, chunk=chunk,
    )
    err = Console(stderr=True, quiet=quiet)
    out = Console(width=None if sys.stdout.isatty() else 120)
    bar = None
    if show_progress(quiet):
        from tqdm import tqdm

        bar = tqdm(total=0, unit="tile", desc=command, file=sys.stderr, leave=False)

    def on_scene(path: Path, n: int) -> None:
        if bar is not None:
            bar.total += n
            bar.refresh()
        elif not quiet and verbose:
            err.print(f"{path.name}: {n} tile(s)")

    t0 = time.perf_counter()
    try:
        result = run_study(scenes, masks, model, config=cfg, bidx=parse_bidx(bidx), device=device, max_tiles=max_tiles,
                           keep_going=True, progress=(bar.update if bar is not None else None), on_scene=on_scene)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    for scene, msg in result.errors:
        error(msg if msg.startswith(str(scene)) else f"{scene}: {msg}")
    if not result.rows:
        raise SegxaiError("no tiles evaluated" + (" (every scene failed)" if result.errors else " (all tiles are nodata)"))

    order = list(cfg.methods)
    summ = R.summarize(result.rows, order=order, layer_order=cfg.layers)
    by_layer = R.summarize(result.rows, by=("method", "layer", "mode"), order=order, layer_order=cfg.layers)
    best = {m: R.best_per_threshold(summ, m) for m in cfg.modes} if sweep else {}
    from segxai_cli.model.checkpoint import bundled_model_path

    model_path = str(model) if model is not None else str(bundled_model_path())
    sources = sorted({s["target_source"] for s in result.scenes})
    meta: dict[str, Any] = {
        "command": command, "argv": sys.argv[1:], "config": cfg.as_dict(), "model": model_path,
        "scenes": result.scenes, "errors": [{"scene": s, "error": m} for s, m in result.errors],
        "rows": len(result.rows), "tiles": sum(s["tiles"] - s["skipped_nodata_tiles"] for s in result.scenes),
        "skipped_nodata_tiles": sum(s["skipped_nodata_tiles"] for s in result.scenes),
        "empty_target_rows": sum(1 for r in result.rows if r["empty_target"]),
        "target_source": sources, "model_forward_images": result.forwards,
        "deduplicated_inputs": result.deduplicated, "seconds": round(seconds, 2),
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "outputs": {k: str(v) for k, v in paths.items()},
    }
    from segxai_cli import __version__

    meta["segxai_version"] = __version__
    try:
        from segxai_cli.model.checkpoint import file_sha256

        meta["model_sha256"] = file_sha256(Path(model_path))
    except OSError:
        pass

    R.write_csv(result.rows, paths["csv"])
    R.write_csv(summ, paths["summary"], R.summary_columns())
    if sweep:
        R.write_csv([b for m in cfg.modes for b in best[m]], paths["best"], R.BEST_COLUMNS)
    title = f"segxai {command}: {len(meta['scenes'])} scene(s), {meta['tiles']} tiles, T = {'/'.join(sources)}"
    if sweep:
        R.plot_sweep(summ, paths["plot"], title=title)
    else:
        ts = ", ".join(f"{t:g}" for t in cfg.thresholds)
        R.plot_evaluate(by_layer, paths["plot"], title=f"{title}, t = {ts}")
    R.write_json(meta, paths["meta"])

    if "prediction" in sources and not quiet:
        err.print("note: no ground-truth mask for " + ", ".join(s["scene"] for s in result.scenes if s["target_source"] == "prediction")
                  + ": the model's prediction stands in for the target pixels T (target_source=prediction; IoU is against the prediction)")
    if meta["empty_target_rows"] and not quiet:
        n_tiles = len({(r["scene"], r["tile"]) for r in result.rows if r["empty_target"]})
        err.print(f"note: {n_tiles} tile(s) have no target-class pixels: their rows are marked empty_target=True "
                  "(confidence/entropy NaN) and left out of the summary means")
    if meta["skipped_nodata_tiles"] and not quiet:
        err.print(f"note: skipped {meta['skipped_nodata_tiles']} all-nodata tile(s)")

    if as_json:
        typer.echo(json.dumps(R._jsonable({"meta": meta, "summary": summ, "best": best}), indent=2))
    elif not quiet:
        for table in R.summary_tables(summ, title=f"T = {'/'.join(sources)}"):
            out.print(table)
        if sweep:
            for layer in cfg.layers:
                for m in cfg.modes:
                    out.print(R.best_table(best[m], m, layer))
        if len(cfg.layers) > 1:
            out.print(R.layer_table(by_layer))
        typer.echo(f"{meta['tiles']} tiles x {len(cfg.methods)} method(s) x {len(cfg.layers)} layer(s) x "
                   f"{len(cfg.thresholds)} threshold(s) in {seconds:.1f} s ({result.forwards} model forwards + CAMs)", err=True)
        for k, p in paths.items():
            typer.echo(f"  {k:8s} {p}", err=True)
    if result.errors:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        inputs: list[str] = typer.Argument(..., help="Input GeoTIFF scenes: files, folders or quoted globs (*_mask.tif files in folders/globs are masks, not scenes).", show_default=False),
        output: Path = typer.Option(..., "-o", "--output", help="The tidy CSV report (one row per tile × method × layer × threshold × mode)."),
        masks: Optional[str] = typer.Option(None, "--masks", help=MASKS_HELP),
        model: Optional[Path] = typer.Option(None, "-m", "--model", help=MODEL_HELP),
        method: Optional[list[str]] = typer.Option(None, "--method", help=METHOD_HELP, show_default=False),
        layer: Optional[list[str]] = typer.Option(None, "--layer", help=LAYER_HELP, show_default=False),
        threshold: Optional[list[str]] = typer.Option(None, "--threshold", help="Saliency threshold t in [0, 1] (Phi = S ≥ t); repeatable, comma list or start:stop:step. Default 0.5."),
        target_class: Optional[str] = typer.Option(None, "--class", help="Target class: index or name. Default: the checkpoint's target class."),
        fill: str = typer.Option("mean", "--fill", help="Value for removed pixels: mean (band mean = 0 normalised), zero (raw 0), blur (Gaussian-blurred tile)."),
        blur_sigma: float = typer.Option(8.0, "--blur-sigma", help="Sigma in pixels for --fill blur."),
        curve_steps: int = typer.Option(10, "--curve-steps", help="Deletion/insertion curve steps (10: 0, 10, ..., 100 %); 0 skips the curves."),
        sanity: bool = typer.Option(False, "--sanity", help="Model-parameter randomisation check: Spearman between maps of the trained and a re-initialised model (column sanity_spearman)."),
        seed: int = typer.Option(0, "--seed", help="Seed for everything random (the re-initialised model of --sanity); recorded in the report."),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        batch_size: int = typer.Option(4, "--batch-size", help="Tiles per batch (CAMs computed together)."),
        chunk: int = typer.Option(16, "--chunk", help="Reduced images per model forward."),
        bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="Input bands, 1-based, comma-separated. Default: the checkpoint's."),
        max_tiles: Optional[int] = typer.Option(None, "--max-tiles", help="Evaluate at most this many tiles per scene (quick looks)."),
        summary: Optional[Path] = typer.Option(None, "--summary", help="Summary CSV (mean/std per method × layer × mode × threshold). Default: <output>_summary.csv."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="PNG plot. Default: <output>.png."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
        verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More log output (-vv debug)."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary and run metadata as JSON on stdout instead of tables."),
    ) -> None:
        """Faithfulness of CAM explanations per tile: M1/M2/M3 confidence and entropy, IoU change,
        Dice Explained, Saliency Ratio, PPS/IPS, deletion/insertion AUC (seed 001 / methods.md).

        Writes the tidy CSV, a summary CSV, a PNG plot and a JSON record of the run (options, seed,
        model checksum, timings). Without --masks the prediction stands in for the target pixels.
        """
        run_command(
            command="evaluate", inputs=inputs, masks=masks, model=model, methods=method, layers=layer,
            thresholds=parse_thresholds(threshold) or [0.5], target_class=target_class, fill=fill,
            blur_sigma=blur_sigma, curve_steps=curve_steps, sanity=sanity, seed=seed, device=device,
            batch_size=batch_size, chunk=chunk, bidx=bidx, max_tiles=max_tiles, output=output, summary=summary,
            plot=plot, best_path=None, overwrite=overwrite, quiet=quiet, verbose=verbose, as_json=as_json, sweep=False,
        )

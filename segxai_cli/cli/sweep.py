"""``segxai threshold-sweep``: the evaluation over a list of thresholds (seed 001, Task 1).

Writes the long CSV, the summary, the "best method per threshold" tables for M1, M2 and M3, and a
plot of each metric against the threshold (one line per method, one panel per mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from segxai_cli.cli.common import DEVICE_HELP, MODEL_HELP
from segxai_cli.cli.evaluate import LAYER_HELP, MASKS_HELP, METHOD_HELP, parse_thresholds, run_command
from segxai_cli.evaluation.study import SWEEP_THRESHOLDS


def register(app: typer.Typer) -> None:
    @app.command("threshold-sweep")
    def threshold_sweep(
        inputs: list[str] = typer.Argument(..., help="Input GeoTIFF scenes: files, folders or quoted globs (*_mask.tif files in folders/globs are masks, not scenes).", show_default=False),
        output: Path = typer.Option(..., "-o", "--output", help="The long CSV (one row per tile × method × layer × threshold × mode)."),
        threshold: Optional[list[str]] = typer.Option(None, "--threshold", "--thresholds", help="Thresholds: repeatable, comma list or start:stop:step. Default 0.1:0.5:0.1 (seed 001)."),
        masks: Optional[str] = typer.Option(None, "--masks", help=MASKS_HELP),
        model: Optional[Path] = typer.Option(None, "-m", "--model", help=MODEL_HELP),
        method: Optional[list[str]] = typer.Option(None, "--method", help=METHOD_HELP, show_default=False),
        layer: Optional[list[str]] = typer.Option(None, "--layer", help=LAYER_HELP, show_default=False),
        target_class: Optional[str] = typer.Option(None, "--class", help="Target class: index or name. Default: the checkpoint's target class."),
        fill: str = typer.Option("mean", "--fill", help="Value for removed pixels: mean, zero (raw 0) or blur."),
        blur_sigma: float = typer.Option(8.0, "--blur-sigma", help="Sigma in pixels for --fill blur."),
        curve_steps: int = typer.Option(10, "--curve-steps", help="Deletion/insertion curve steps; 0 skips the curves (they do not depend on the threshold)."),
        sanity: bool = typer.Option(False, "--sanity", help="Model-parameter randomisation check (column sanity_spearman)."),
        seed: int = typer.Option(0, "--seed", help="Seed for everything random; recorded in the report."),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
        batch_size: int = typer.Option(4, "--batch-size", help="Tiles per batch."),
        chunk: int = typer.Option(16, "--chunk", help="Reduced images per model forward."),
        bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="Input bands, 1-based, comma-separated. Default: the checkpoint's."),
        max_tiles: Optional[int] = typer.Option(None, "--max-tiles", help="At most this many tiles per scene."),
        summary: Optional[Path] = typer.Option(None, "--summary", help="Summary CSV. Default: <output>_summary.csv."),
        best: Optional[Path] = typer.Option(None, "--best", help="Best-method-per-threshold CSV (M1, M2, M3). Default: <output>_best.csv."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="PNG: metrics against the threshold. Default: <output>.png."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing outputs."),
        quiet: bool = typer.Option(False, "-q", "--quiet", help="Only errors."),
        verbose: int = typer.Option(0, "-v", "--verbose", count=True, help="More log output."),
        as_json: bool = typer.Option(False, "--json", help="Print summary, best-method tables and metadata as JSON on stdout."),
    ) -> None:
        """Seed 001's threshold study: every metric of `segxai evaluate` over thresholds 0.1…0.5,
        with the best method per threshold for M1 (lowest confidence), M2 (highest confidence) and
        M3 (lowest entropy), and a plot of each metric against the threshold.
        """
        run_command(
            command="threshold-sweep", inputs=inputs, masks=masks, model=model, methods=method, layers=layer,
            thresholds=parse_thresholds(threshold) or list(SWEEP_THRESHOLDS), target_class=target_class, fill=fill,
            blur_sigma=blur_sigma, curve_steps=curve_steps, sanity=sanity, seed=seed, device=device,
            batch_size=batch_size, chunk=chunk, bidx=bidx, max_tiles=max_tiles, output=output, summary=summary,
            plot=plot, best_path=best, overwrite=overwrite, quiet=quiet, verbose=verbose, as_json=as_json, sweep=True,
        )

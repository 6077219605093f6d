"""``segxai report``: the HTML report of an output folder (explain's scenes, evaluate / sweep studies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import setup_logging

HELP = """Write report.html for an output folder: one self-contained page (no network, opens from file://) with the run (model, layer, methods, versions, time, throughput), a sortable table of the scenes with thumbnails, each scene's input, prediction and methods side by side, and — when evaluate / threshold-sweep files are in the folder — the study: M1/M2/M3 and IoU change per method and layer with error bars, threshold-sweep curves, deletion/insertion curves and the sanity check.

The page is rebuilt from the folder's files each time (like the manifest), so an existing report is replaced. explain, evaluate and threshold-sweep write it themselves with --report.

\b
Examples:
  segxai report out/
  segxai report out/ -o ~/public_html/run42.html
"""


def register(app: typer.Typer) -> None:
    app.command("report", help=HELP, no_args_is_help=True)(report)


def report(
    folder: Annotated[Path, typer.Argument(metavar="OUTDIR", help="A folder segxai wrote into (explain outputs, evaluate/threshold-sweep reports).", show_default=False)],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="HTML", help="Where to write the page. Default: OUTDIR/report.html.", show_default=False)] = None,
    quiet: O.Quiet = False,
    verbose: O.Verbose = 0,
) -> None:
    setup_logging(verbose, quiet)
    from segxai_cli.report import build_report

    path = build_report(folder, output)
    if not quiet:
        typer.echo(f"segxai report: {path}", err=True)

"""``segxai merge``: one manifest and CSV for an output folder that several shards or machines wrote."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import setup_logging

HELP = """Rebuild segxai_manifest.json and segxai_scenes.csv of OUTDIR from every complete scene record in it.

Each shard of a job array (--shard) writes its scenes and rebuilds the summary when it ends; shards that end at the same moment can miss each other's last scenes. Run this once after all of them.

\b
Example:
  segxai merge out/
"""


def register(app: typer.Typer) -> None:
    app.command("merge", help=HELP, no_args_is_help=True)(merge)


def merge(
    outdir: Annotated[Path, typer.Argument(metavar="OUTDIR", help="An explain output folder.", show_default=False)],
    quiet: O.Quiet = False,
    verbose: O.Verbose = 0,
) -> None:
    setup_logging(verbose, quiet)
    from segxai_cli.errors import InputError
    from segxai_cli.explain.records import write_run_summary

    if not outdir.is_dir():
        raise InputError(f"{outdir}: no such folder")
    manifest, csv = write_run_summary(outdir, [], None, None, time.time(), None, [])
    if manifest is None:
        raise InputError(f"{outdir}: no complete scene record (*_saliency.json) in it")
    if not quiet:
        rows = max(0, len(csv.read_text(encoding="utf-8").splitlines()) - 1)
        typer.echo(f"segxai merge: {rows} scene(s) -> {manifest}, {csv}", err=True)

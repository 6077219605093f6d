"""The ``segxai`` Typer app: a thin layer that parses options, calls the API and reports.

Each subcommand lives in its own module with a ``register(app)`` function. User errors
(:class:`~segxai_cli.errors.SegxaiError`) become one line on stderr and exit code 1; usage errors
exit 2 (Typer's convention, as in rio); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from segxai_cli import __version__
from segxai_cli.errors import SegxaiError


class _Group(TyperGroup):
    """Turns user errors raised anywhere in a subcommand into one line and exit code 1."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except SegxaiError as exc:
            typer.echo(f"error: {exc}", err=True)
            ctx.exit(1)


app = typer.Typer(
    cls=_Group,
    name="segxai",
    help="Explain semantic-segmentation models on georeferenced imagery (Seg-CAMs as QGIS-ready GeoTIFFs).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Subcommand modules, in the order they appear in --help. A module that is absent is skipped, so
# the app works while features are being added.
SUBCOMMANDS = ("explain", "evaluate", "sweep", "train", "layers", "info", "import_model", "synth")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segxai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Explain semantic-segmentation models on georeferenced imagery."""


for _name in SUBCOMMANDS:
    try:
        _mod = importlib.import_module(f"segxai_cli.cli.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"segxai_cli.cli.{_name}":
            raise
        continue
    _mod.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

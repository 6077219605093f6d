"""Options and helpers shared by the subcommands (rio-style names)."""

from __future__ import annotations

import logging
import sys

import typer

from segxai_cli.errors import SegxaiError

DEVICE_HELP = "Torch device: auto (CUDA when available), cpu, cuda or cuda:N."
MODEL_HELP = "Model checkpoint (.pt). Default: the bundled sample building model."

log = logging.getLogger("segxai")


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Logs go to stderr (results and JSON go to stdout): WARNING by default, -v INFO, -vv DEBUG."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    logging.captureWarnings(True)


def error(message: str) -> None:
    """One line on stderr, prefixed like every segxai error."""
    typer.echo(f"error: {message}", err=True)


def parse_bidx(value: str | None) -> list[int] | None:
    """``-b 1,2,3`` or ``-b 1 -b 2`` style 1-based band indexes."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise SegxaiError(f"--bidx {value!r}: expected comma-separated 1-based band indexes, e.g. 1,2,3") from None


def show_progress(quiet: bool) -> bool:
    """Progress bars only on an interactive terminal (cron logs stay clean)."""
    return not quiet and sys.stderr.isatty()

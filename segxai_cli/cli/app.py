"""The ``segxai`` command: a thin Typer layer over the Python API.

Subcommands are registered explicitly below (a missing module is an import error, never a command
that silently vanished). Each command module imports only typer and the light parts of segxai at
import time, so ``segxai --help`` and ``segxai CMD --help`` answer without loading torch or rasterio.

Exit codes (as rio): 0 all done; 1 some input failed (the others were processed); 2 usage error
(unknown method, layer or class, a bad number, a bad ``-b``…), always as one ``error:`` line on
stderr; 128 + N after signal N (SIGINT 130, SIGTERM 143, SIGHUP 129), with one ``interrupted`` line,
temp files removed and nothing half-written under a final name.
"""

from __future__ import annotations

import signal
import sys
import threading

import typer

from typer.core import TyperGroup

try:  # typer vendors click since 0.2x; older typers use click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

from segxai_cli._version import __version__
from segxai_cli.cli import evaluate, explain, import_model, info, layers, merge, report, synth, train
from segxai_cli.errors import SegxaiError


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP: raised in the main thread so that every ``finally`` and abort path
    runs (temp files removed) — a BaseException, like KeyboardInterrupt, so no ``except Exception``
    swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, _frame) -> None:
    # The first signal starts the clean-up; further ones must not interrupt it (temp files would stay).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


class _Group(TyperGroup):
    """Runs every command with the exit-code contract of the module docstring (also under CliRunner)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):  # type: ignore[override]
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            handlers = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            rc = _run(super().main, args, prog_name, complete_var, **extra)
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        if standalone_mode:
            sys.exit(rc)
        return rc


def _run(main, args, prog_name, complete_var, **extra) -> int:
    try:
        rc = main(args, prog_name, complete_var, standalone_mode=False, **extra)
    except SegxaiError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except click_exc.NoArgsIsHelpError as exc:
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
        return 2
    except click_exc.UsageError as exc:
        typer.echo(f"error: {_usage_message(exc)}", err=True)
        return 2
    except (Interrupted, KeyboardInterrupt, typer.Abort) as exc:
        typer.echo("interrupted", err=True)
        return 128 + getattr(exc, "signum", signal.SIGINT)
    return rc if isinstance(rc, int) else 0


app = typer.Typer(
    cls=_Group,
    name="segxai",
    help="Explain semantic-segmentation models on georeferenced imagery: saliency maps (Seg-CAMs) as "
         "QGIS-ready GeoTIFFs, and reports on how faithful they are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segxai {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Explain semantic-segmentation models on georeferenced imagery."""


for _module in (explain, evaluate, report, train, layers, info, import_model, synth, merge):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


def _usage_message(exc: click_exc.UsageError) -> str:
    msg = " ".join(exc.format_message().split())
    cmd = exc.ctx.command_path if exc.ctx is not None else "segxai"
    return f"{msg} (see `{cmd} --help`)"


if __name__ == "__main__":  # python -m segxai_cli.cli.app
    main()

"""``segxai layers``: which target layers a model has, their output shapes and aliases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from segxai_cli.cli.common import MODEL_HELP


def register(app: typer.Typer) -> None:
    @app.command("layers")
    def layers(
        model: Optional[Path] = typer.Argument(None, help=MODEL_HELP, show_default=False),
        depth: int = typer.Option(3, "--depth", help="Show modules down to this many dots in the name (aliases always shown)."),
        all_: bool = typer.Option(False, "--all", help="Show every module, however deep."),
        grep: Optional[str] = typer.Option(None, "--grep", help="Only names containing this text."),
        tile_size: Optional[int] = typer.Option(None, "--tile-size", help="Input size for the shapes (default: the checkpoint's)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    ) -> None:
        """List a model's layers (dotted names for --layer), output shapes for one tile, and aliases.

        Aliases: bottleneck (deepest encoder features), encoder.N, decoder.N (decoder stage N counted
        from the bottleneck), decoder.last. Any dotted name listed here works with --layer.
        """
        from segxai_cli.model.checkpoint import load_checkpoint
        from segxai_cli.model.layers import describe_layers

        net, info = load_checkpoint(model)
        size = tile_size or info.tile_size
        rows = describe_layers(net, info.in_channels, size)
        if not all_:
            rows = [r for r in rows if r.aliases or r.name.count(".") < depth]
        if grep:
            rows = [r for r in rows if grep in r.name]
        if as_json:
            typer.echo(json.dumps([r._asdict() for r in rows], indent=2))
            return
        table = Table(title=f"{info.arch}/{info.encoder}, input 1×{info.in_channels}×{size}×{size}")
        for col in ("layer", "type", "output shape", "aliases"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r.name, r.type, r.shape, ", ".join(r.aliases), style="bold" if r.aliases else None)
        Console().print(table)

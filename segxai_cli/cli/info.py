"""``segxai info``: what a checkpoint holds (architecture, bands, classes, statistics, provenance)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from segxai_cli.cli.common import MODEL_HELP


def register(app: typer.Typer) -> None:
    @app.command("info")
    def info(
        model: Optional[Path] = typer.Argument(None, help=MODEL_HELP, show_default=False),
        as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    ) -> None:
        """Show a checkpoint's metadata: everything explain/evaluate use without flags."""
        from segxai_cli.model.checkpoint import load_checkpoint

        net, meta = load_checkpoint(model)
        record = meta.to_meta() | {
            "path": meta.path,
            "sha256": meta.sha256,
            "parameters": sum(p.numel() for p in net.parameters()),
        }
        if as_json:
            typer.echo(json.dumps(record, indent=2, default=str))
            return
        table = Table(show_header=False, title=str(meta.path))
        table.add_column(style="bold")
        table.add_column(overflow="fold")
        for key, value in record.items():
            table.add_row(key, json.dumps(value, default=str) if isinstance(value, (dict, list)) else str(value))
        Console().print(table)

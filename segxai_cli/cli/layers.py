"""``segxai layers``: which target layers a model has, their output shapes and aliases."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from segxai_cli.cli import options as O

HELP = """List a model's layers: dotted names for --layer, output shapes for one tile, and aliases.

Aliases: bottleneck (deepest encoder features), encoder.N, decoder.N (decoder stage N counted from the bottleneck), decoder.last. Any name listed here works with --layer. One layer per line, never wrapped, so names can be copied.
"""


def register(app: typer.Typer) -> None:
    app.command("layers", help=HELP)(layers)


def layers(
    model: O.ModelArg = None,
    depth: Annotated[int, typer.Option("--depth", help="Show modules down to this many dots in the name (aliases always shown).")] = 3,
    all_: Annotated[bool, typer.Option("--all", help="Show every module, however deep.")] = False,
    grep: Annotated[Optional[str], typer.Option("--grep", help="Only names containing this text.", show_default=False)] = None,
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", help="Input size for the shapes. Default: the checkpoint's.", show_default=False)] = None,
    as_json: O.Json = False,
) -> None:
    from segxai_cli.model.checkpoint import load_checkpoint
    from segxai_cli.model.families import as_adapter
    from segxai_cli.model.layers import describe_layers

    net, info = load_checkpoint(model)
    if as_adapter(net).bare:
        note = (f"{info.label} model (a bare {info.family} file): no layers to hook; "
                "it is explained with the model-agnostic methods: --method rise, occlusion")
        typer.echo(json.dumps({"layers": [], "note": note}) if as_json else f"# {note}")
        return
    size = tile_size or info.tile_size
    rows = describe_layers(net, info.in_channels, size)
    if not all_:
        rows = [r for r in rows if r.aliases or r.name.count(".") < depth]
    if grep:
        rows = [r for r in rows if grep in r.name]
    if as_json:
        typer.echo(json.dumps([r._asdict() for r in rows], indent=2))
        return
    typer.echo(f"# {info.label}, input 1x{info.in_channels}x{size}x{size}")
    head = ("layer", "type", "output shape", "aliases")
    widths = [max(len(head[i]), *(len(str(r[i] if i < 3 else ", ".join(r.aliases))) for r in rows)) for i in range(3)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(head, widths)) + "  " + head[3])
    for r in rows:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r[:3], widths)) + "  " + ", ".join(r.aliases))

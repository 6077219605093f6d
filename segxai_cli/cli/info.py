"""``segxai info``: what a checkpoint holds — a summary, or everything (provenance included) with ``--json``."""

from __future__ import annotations

import json

import typer

from segxai_cli.cli import options as O


def register(app: typer.Typer) -> None:
    app.command("info", help="Show a checkpoint's metadata: everything explain/evaluate use without flags. "
                             "--json adds the full provenance (training data, recipe, versions).")(info)


def info(model: O.ModelArg = None, as_json: O.Json = False) -> None:
    from pathlib import Path

    from segxai_cli.model.checkpoint import load_checkpoint

    net, meta = load_checkpoint(model)
    record = meta.to_meta() | {
        "file": Path(meta.path).name,
        "sha256": meta.sha256,
        "parameters": sum(p.numel() for p in net.parameters()),
    }
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    prov = meta.provenance
    stats = meta.band_stats
    lines = [
        ("file", f"{record['file']} (sha256 {meta.sha256[:12]}…)"),
        ("model", f"{meta.family} {meta.label}, {record['parameters']:,} parameters"
                  + (f", {json.dumps(meta.model_kwargs)}" if meta.model_kwargs else "")),
        ("bands", f"{meta.in_channels}: {','.join(map(str, meta.bands))}"
                  + (f" ({meta.source_dtype})" if meta.source_dtype else "")),
        ("band mean", ", ".join(f"{v:.4g}" for v in stats.mean) if stats else "none (segxai import --stats-from …)"),
        ("band std", ", ".join(f"{v:.4g}" for v in stats.std) if stats else "none"),
        ("classes", ", ".join(f"{i}={n}" for i, n in enumerate(meta.class_names))),
        ("target class", f"{meta.target_class} ({meta.class_names[meta.target_class]})"),
        ("tile size", str(meta.tile_size)),
        ("trained", _trained(prov)),
        ("segxai", meta.segxai_version),
    ]
    width = max(len(k) for k, _ in lines)
    for k, v in lines:
        typer.echo(f"{k.ljust(width)}  {v}")


def _trained(prov: dict) -> str:
    if not prov:
        return "no provenance recorded"
    if "imported_from" in prov:
        return f"imported from {prov['imported_from']}"
    parts = []
    if prov.get("data"):
        parts.append(f"{len(prov['data'])} scene(s)")
    if prov.get("epochs_completed") or prov.get("epochs"):
        parts.append(f"{prov.get('epochs_completed', prov.get('epochs'))} epoch(s), best {prov.get('best_epoch', '?')}")
    if prov.get("val_iou") is not None:
        parts.append(f"val IoU {prov['val_iou']:.3f}")
    if prov.get("date"):
        parts.append(prov["date"][:10])
    return ", ".join(parts) + " (--json for the full provenance)"

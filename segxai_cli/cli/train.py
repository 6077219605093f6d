"""``segxai train``: train a segmentation model on scene/mask GeoTIFF pairs."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Optional

import typer

from segxai_cli.cli import options as O
from segxai_cli.cli.console import is_terminal, setup_logging
from segxai_cli.errors import UsageError

HELP = """Train a segmentation model (segmentation-models-pytorch) on random windows of GeoTIFF scenes.

IMAGES and MASKS are each a file, a folder (its .tif/.tiff files) or a quoted glob. Pairs are
matched by file name: the mask of scene `<stem>.tif` is `<stem>_mask.tif` among MASKS, or else a
file with the same name as the scene (e.g. images/a.tif and masks/a.tif). Files named *_mask are
never taken as scenes, so IMAGES and MASKS may be the same folder. Every scene needs a mask.

Masks hold the class index per pixel (0..classes-1; uint8); 255 and the mask's nodata are ignored,
as are the scene's nodata pixels. Scene and mask must share size, transform and CRS.

A fixed, seeded set of tile-sized cells (--val-fraction) is held out for validation; their labels
are never trained on. The best checkpoint by validation IoU (foreground class) is written atomically
to MODEL with the bands, classes, per-band normalisation statistics, tile size and provenance. A
per-epoch CSV log (epoch, loss, train_iou, val_iou, lr, seconds) goes to <model stem>_log.csv.

Example: segxai train "sample_tiles/scene_0*.tif" sample_tiles -o model.pt --epochs 20
"""
# One line per paragraph: the help formatter re-wraps paragraphs to the terminal width.
HELP = "\n\n".join(" ".join(p.split()) for p in HELP.strip().split("\n\n"))


def _parse_ints(value: Optional[str], option: str) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        out = [int(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected comma-separated integers, e.g. 64,32,16") from None
    if not out:
        raise UsageError(f"{option} {value!r}: expected comma-separated integers")
    return out


def train_command(
    images: str = typer.Argument(..., metavar="IMAGES", help="Scene GeoTIFF(s): a file, a folder or a quoted glob."),
    masks: str = typer.Argument(..., metavar="MASKS", help="Mask GeoTIFF(s): a file, a folder or a quoted glob."),
    output: Path = typer.Option(..., "-o", "--output", metavar="MODEL", help="Checkpoint to write (.pt)."),
    arch: str = typer.Option("Unet", "--arch", help="smp architecture: Unet, UnetPlusPlus, FPN, DeepLabV3Plus, ..."),
    encoder: str = typer.Option("resnet18", "--encoder", help="smp encoder (random init; no weights are downloaded)."),
    encoder_depth: Optional[int] = typer.Option(None, "--encoder-depth", help="Encoder depth (3..5); tile size must be a multiple of 2^depth."),
    decoder_channels: Optional[str] = typer.Option(None, "--decoder-channels", help="Decoder channels, e.g. 128,64,32,16,8 (one per encoder stage)."),
    classes: int = typer.Option(2, "--classes", help="Output classes (2 = background/building; 1 = binary sigmoid model)."),
    class_names: Optional[str] = typer.Option(None, "--class-names", help="Comma-separated class names (default background,building)."),
    epochs: int = typer.Option(20, "--epochs", help="Training epochs."),
    tile_size: int = typer.Option(256, "--tile-size", help="Window size in pixels (stored as the model's tile size)."),
    crop_size: Optional[int] = typer.Option(None, "--crop-size", help="Train on random crops of this size (default: the tile size); validation uses tiles."),
    batch_size: int = typer.Option(8, "--batch-size", help="Windows per batch."),
    lr: float = typer.Option(1e-3, "--lr", help="(Peak) learning rate of AdamW."),
    schedule: str = typer.Option("onecycle", "--schedule", help="Learning-rate schedule: onecycle, cosine or constant."),
    loss: str = typer.Option("ce+dice", "--loss", help="Loss: ce (BCE for 1 class), dice, or ce+dice."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Fraction of tile cells held out for validation (0 = none)."),
    samples_per_epoch: int = typer.Option(512, "--samples-per-epoch", help="Random windows per epoch."),
    min_valid: float = typer.Option(0.5, "--min-valid", help="Redraw windows with less than this labelled (non-nodata) fraction."),
    jitter: float = typer.Option(0.1, "--jitter", help="Colour augmentation: random per-band gain 1±J and offset ±J (in standard deviations); 0 = off."),
    seed: int = typer.Option(0, "--seed", help="Random seed (training is deterministic for a seed on the CPU)."),
    device: O.Device = "auto",
    bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="1-based bands to train on, e.g. 1,2,3 (default: all).", show_default=False),
    init: Optional[Path] = typer.Option(None, "--init", metavar="CHECKPOINT", help="Start from this segxai checkpoint's weights (fine-tune); its architecture, encoder, classes, bands and normalisation are used and --arch/--encoder/--encoder-depth/--decoder-channels/--classes/--class-names are ignored."),
    log_file: Optional[Path] = typer.Option(None, "--log", help="CSV log path (default <model stem>_log.csv next to MODEL)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing MODEL (and log)."),
    quiet: O.Quiet = False,
    verbose: O.Verbose = 0,
) -> None:
    setup_logging(verbose, quiet)
    from segxai_cli.options import parse_bands
    from segxai_cli.training.recipe import TrainConfig, resolve_class_names

    model_kwargs: dict = {}
    if encoder_depth is not None:
        model_kwargs["encoder_depth"] = encoder_depth
    dec = _parse_ints(decoder_channels, "--decoder-channels")
    if dec is not None:
        model_kwargs["decoder_channels"] = dec
    names = [n for n in class_names.split(",")] if class_names else None

    def on_epoch(row: dict) -> None:
        if quiet:
            return
        val = row["val_iou"]
        val_s = "n/a" if math.isnan(val) else f"{val:.4f}"
        typer.echo(
            f"epoch {row['epoch']}/{epochs}: loss {row['loss']:.4f}  train IoU {row['train_iou']:.4f}  "
            f"val IoU {val_s}  lr {row['lr']:.2e}  {row['seconds']:.1f}s  (best epoch {row['best_epoch']})",
            err=True,
        )

    recipe = TrainConfig(
        epochs=epochs, tile_size=tile_size, crop_size=crop_size, batch_size=batch_size, lr=lr, val_fraction=val_fraction,
        seed=seed, samples_per_epoch=samples_per_epoch, loss=loss, schedule=schedule, min_valid=min_valid, jitter=jitter,
    ).validate()
    bands = parse_bands(bidx)
    if init is None:
        resolve_class_names(classes, names)
    from segxai_cli.training.loop import train_model  # torch: only once the options are known to be good
    result = train_model(
        images, masks, output, arch=arch, encoder=encoder, classes=classes, class_names=names, model_kwargs=model_kwargs,
        config=recipe, device=device, bidx=bands, overwrite=overwrite, log_path=log_file,
        progress=not quiet and is_terminal(), on_epoch=on_epoch, extra_provenance={"command": _command_line()}, init=init,
    )
    iou = result.best_iou
    what = result.info.provenance.get("selected_by", "val_iou").replace("_iou", " IoU")
    typer.echo(
        f"{result.path}: best epoch {result.best_epoch}/{epochs}, {what} {iou:.4f}; log {result.log_path}"
    )


def _command_line() -> str:
    """The command, for the checkpoint's provenance; paths reduced to file names (no machine's folders)."""
    import shlex

    args = [Path(a).name if "/" in a else a for a in sys.argv[1:]]
    return "segxai " + " ".join(shlex.quote(a) for a in args) if args else ""


def register(app: typer.Typer) -> None:
    app.command("train", help=HELP, no_args_is_help=True)(train_command)

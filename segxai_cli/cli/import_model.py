"""``segxai import``: turn a plain smp ``state_dict`` into a self-describing segxai checkpoint.

Checkpoints made elsewhere lack what explain/evaluate need to read scenes correctly (bands, band
statistics, tile size, class names). This command records them once, so every later command runs
without model flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from segxai_cli.errors import UsageError


def _floats(value: Optional[str], option: str) -> Optional[tuple[float, ...]]:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.replace(" ", "").split(",") if v)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected comma-separated numbers") from None


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_model(
        state_dict: Path = typer.Argument(..., help="A plain segmentation-models-pytorch state_dict (.pt/.pth)."),
        output: Path = typer.Option(..., "-o", "--output", metavar="MODEL", help="segxai checkpoint to write (.pt)."),
        arch: str = typer.Option(..., "--arch", help="smp architecture the weights belong to (Unet, FPN, ...)."),
        encoder: str = typer.Option(..., "--encoder", help="smp encoder name (resnet34, mobilenet_v2, ...)."),
        classes: int = typer.Option(..., "--classes", help="Output channels of the model (1 = binary sigmoid)."),
        encoder_depth: Optional[int] = typer.Option(None, "--encoder-depth", help="Encoder depth if not the smp default (5)."),
        decoder_channels: Optional[str] = typer.Option(None, "--decoder-channels", help="Decoder channels if not the smp default, e.g. 128,64,32,16,8."),
        class_names: Optional[str] = typer.Option(None, "--class-names", help="Comma-separated class names."),
        target_class: int = typer.Option(1, "--target-class", help="Default class to explain."),
        bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="1-based input bands the model takes (default 1..in_channels)."),
        stats_from: Optional[list[Path]] = typer.Option(None, "--stats-from", help="Scene(s) to compute per-band mean/std from (nodata ignored); repeatable."),
        band_mean: Optional[str] = typer.Option(None, "--band-mean", help="Per-band means used at training, e.g. 123.7,116.3,103.5."),
        band_std: Optional[str] = typer.Option(None, "--band-std", help="Per-band standard deviations used at training."),
        tile_size: int = typer.Option(256, "--tile-size", help="The model's native tile size (a multiple of its stride, e.g. 32)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing MODEL."),
    ) -> None:
        """Wrap a plain state_dict with the metadata segxai needs (bands, band statistics, classes, tile size).

        Band statistics come from the values used at training (--band-mean/--band-std, in the scenes'
        raw units) or are computed from representative scenes (--stats-from). Example:

        segxai import unet.pth -o unet_segxai.pt --arch Unet --encoder resnet34 --classes 2 --stats-from scenes/a.tif
        """
        from segxai_cli.errors import OutputError
        from segxai_cli.model.checkpoint import check_tile_size, load_checkpoint, save_checkpoint
        from segxai_cli.options import parse_bands
        from segxai_cli.raster.reader import open_raster_quiet
        from segxai_cli.raster.stats import BandStats, compute_band_stats

        if output.exists() and not overwrite:
            raise OutputError(f"{output}: exists (use --overwrite to replace it)")
        kwargs = {}
        if encoder_depth is not None:
            kwargs["encoder_depth"] = encoder_depth
        if decoder_channels:
            kwargs["decoder_channels"] = [int(v) for v in decoder_channels.split(",") if v]
        net, info = load_checkpoint(state_dict, arch=arch, encoder=encoder, classes=classes, model_kwargs=kwargs)
        bands = parse_bands(bidx) or list(range(1, info.in_channels + 1))
        if len(bands) != info.in_channels:
            raise UsageError(f"--bidx: {len(bands)} band(s) given but the weights take {info.in_channels}")
        mean, std = _floats(band_mean, "--band-mean"), _floats(band_std, "--band-std")
        if (mean is None) != (std is None):
            raise UsageError("give both --band-mean and --band-std, or neither")
        if mean is not None:
            if len(mean) != len(bands) or len(std) != len(bands) or min(std) <= 0:
                raise UsageError(f"--band-mean/--band-std: need {len(bands)} values each, std > 0")
            stats = BandStats(mean, std)
        elif stats_from:
            stats = compute_band_stats(stats_from, bands)
            with open_raster_quiet(stats_from[0]) as src:
                info.source_dtype = src.dtypes[0]
        else:
            raise UsageError("band statistics needed: give --band-mean and --band-std, or --stats-from SCENE")
        check_tile_size(tile_size, net, "--tile-size")
        info.bands = bands
        info.band_stats = stats
        info.tile_size = tile_size
        info.target_class = target_class
        if class_names:
            info.class_names = [c.strip() for c in class_names.split(",")]
        info.provenance = {"imported_from": state_dict.name, "imported_sha256": info.sha256}
        save_checkpoint(output, net, info)
        typer.echo(f"wrote {output}")

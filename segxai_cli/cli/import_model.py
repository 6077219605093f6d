"""``segxai import``: turn any model file into a self-describing segxai checkpoint.

Checkpoints made elsewhere lack what explain/evaluate need to read scenes correctly (bands, band
statistics, tile size, class names). This command records them once, so every later command runs
without model flags. What kinds of file it reads: :mod:`segxai_cli.model.importing`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from segxai_cli.errors import InputError, UsageError

HELP = """Wrap a model file with the metadata segxai needs (bands, band statistics, classes, tile size).

\b
SOURCE can be:
  a state_dict (.pt/.pth), plain or wrapped ({"state_dict": ...}, {"model_state_dict": ...},
    DataParallel 'module.', Lightning 'model.' prefixes): give --arch/--encoder/--classes
  a TorchGeo / Lightning checkpoint (.ckpt) whose hyper_parameters name the model: no flags needed
  a Hugging Face save_pretrained folder (SegFormer, UperNet; pip install 'segxai[hf]')
  a TorchScript file (.ts/.pt) or an ONNX file (.onnx; pip install 'segxai[onnx]'): explained with
    the model-agnostic methods (--method rise, occlusion)

Band statistics come from the values used at training (--band-mean/--band-std, in the scenes' raw units) or are computed from representative scenes (--stats-from). Any option can also come from a JSON sidecar (--meta, or SOURCE.segxai.json beside the file) with the same names (bands, band_mean, band_std, class_names, tile_size, arch, ...); options given on the command line win.

\b
Examples:
  segxai import unet.pth -o unet.pt --arch Unet --encoder resnet34 --classes 2 --stats-from scenes/a.tif
  segxai import torchgeo.ckpt -o model.pt --stats-from scenes/a.tif
  segxai import model.onnx -o model.pt --tile-size 256 --stats-from scenes/a.tif
"""

_SIDECAR_KEYS = {"family", "arch", "encoder", "classes", "in_channels", "model_kwargs", "class_names", "target_class",
                 "bands", "band_mean", "band_std", "tile_size", "source_dtype"}


def _floats(value: Any, option: str) -> Optional[tuple[float, ...]]:
    if value is None:
        return None
    try:
        if isinstance(value, (list, tuple)):
            return tuple(float(v) for v in value)
        return tuple(float(v) for v in str(value).replace(" ", "").split(",") if v)
    except (TypeError, ValueError):
        raise UsageError(f"{option} {value!r}: expected comma-separated numbers") from None


def read_sidecar(source: Path, meta: Optional[Path]) -> dict[str, Any]:
    """The JSON sidecar's fields (``--meta`` or ``SOURCE.segxai.json``), checked for unknown keys."""
    path = meta or source.with_name(source.name + ".segxai.json")
    if meta is None and not path.is_file():
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the sidecar must be a JSON object")
    unknown = sorted(set(data) - _SIDECAR_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown sidecar field(s) {', '.join(unknown)} (known: {', '.join(sorted(_SIDECAR_KEYS))})")
    return data


def register(app: typer.Typer) -> None:
    @app.command("import", help=HELP)
    def import_model(
        source: Path = typer.Argument(..., metavar="SOURCE", help="Model file or folder (see above)."),
        output: Path = typer.Option(..., "-o", "--output", metavar="MODEL", help="segxai checkpoint to write (.pt)."),
        family: Optional[str] = typer.Option(None, "--family", help="Model family of a state_dict: smp (default), torchvision, torchgeo."),
        arch: Optional[str] = typer.Option(None, "--arch", help="Architecture of a state_dict (smp: Unet, FPN, ...; torchvision: deeplabv3_resnet50, ...)."),
        encoder: Optional[str] = typer.Option(None, "--encoder", help="smp encoder name (resnet34, mobilenet_v2, ...)."),
        classes: Optional[int] = typer.Option(None, "--classes", help="Output channels of the model (1 = binary sigmoid)."),
        in_channels: Optional[int] = typer.Option(None, "--in-channels", help="Input bands, when the file does not tell."),
        encoder_depth: Optional[int] = typer.Option(None, "--encoder-depth", help="Encoder depth if not the smp default (5)."),
        decoder_channels: Optional[str] = typer.Option(None, "--decoder-channels", help="Decoder channels if not the smp default, e.g. 128,64,32,16,8."),
        model_kwargs: Optional[str] = typer.Option(None, "--model-kwargs", help="Other constructor arguments as JSON, e.g. '{\"aux_loss\": true}'."),
        class_names: Optional[str] = typer.Option(None, "--class-names", help="Comma-separated class names."),
        target_class: Optional[int] = typer.Option(None, "--target-class", help="Default class to explain (default 1)."),
        bidx: Optional[str] = typer.Option(None, "-b", "--bidx", help="1-based input bands the model takes (default 1..in_channels)."),
        stats_from: Optional[list[Path]] = typer.Option(None, "--stats-from", help="Scene(s) to compute per-band mean/std from (nodata ignored); repeatable."),
        band_mean: Optional[str] = typer.Option(None, "--band-mean", help="Per-band means used at training, e.g. 123.7,116.3,103.5."),
        band_std: Optional[str] = typer.Option(None, "--band-std", help="Per-band standard deviations used at training."),
        tile_size: Optional[int] = typer.Option(None, "--tile-size", help="The model's native tile size (a multiple of its stride). Default 256."),
        meta: Optional[Path] = typer.Option(None, "--meta", help="JSON sidecar with any of these options (default: SOURCE.segxai.json if present)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing MODEL."),
    ) -> None:
        from segxai_cli.errors import OutputError

        if output.exists() and not overwrite:
            raise OutputError(f"{output}: exists (use --overwrite to replace it)")
        side = read_sidecar(source, meta)
        cli = dict(family=family, arch=arch, encoder=encoder, classes=classes, in_channels=in_channels,
                   class_names=class_names, target_class=target_class, bands=bidx, band_mean=band_mean,
                   band_std=band_std, tile_size=tile_size)
        opts = {**side, **{k: v for k, v in cli.items() if v is not None}}
        kwargs = dict(side.get("model_kwargs") or {})
        if model_kwargs:
            try:
                kwargs.update(json.loads(model_kwargs))
            except ValueError:
                raise UsageError(f"--model-kwargs {model_kwargs!r}: not a JSON object") from None
        if encoder_depth is not None:
            kwargs["encoder_depth"] = encoder_depth
        if decoder_channels:
            kwargs["decoder_channels"] = [int(v) for v in decoder_channels.split(",") if v]
        _import(source, output, opts, kwargs, stats_from)


def _import(source: Path, output: Path, opts: dict[str, Any], kwargs: dict[str, Any], stats_from) -> None:
    from segxai_cli.model.checkpoint import check_tile_size, save_checkpoint
    from segxai_cli.model.importing import Naming, import_model
    from segxai_cli.options import parse_bands

    tile = int(opts.get("tile_size") or 256)
    naming = Naming(opts.get("family"), opts.get("arch"), opts.get("encoder"), opts.get("classes"),
                    opts.get("in_channels"), kwargs)
    net, info, kind = import_model(source, naming, tile)
    bands = parse_bands(opts.get("bands")) or list(info.bands or range(1, info.in_channels + 1))
    if len(bands) != info.in_channels:
        raise UsageError(f"--bidx: {len(bands)} band(s) given but the model takes {info.in_channels}")
    stats = _stats(opts, bands, stats_from, info)
    if stats is None:
        raise UsageError("band statistics needed: give --band-mean and --band-std, or --stats-from SCENE")
    if opts.get("tile_size") or kind != "segxai checkpoint":
        info.tile_size = tile
    check_tile_size(info.tile_size, net, "--tile-size")
    info.bands, info.band_stats = bands, stats
    if opts.get("target_class") is not None:
        info.target_class = int(opts["target_class"])
    names = opts.get("class_names")
    if names:
        info.class_names = [c.strip() for c in (names.split(",") if isinstance(names, str) else names)]
    if opts.get("source_dtype"):
        info.source_dtype = str(opts["source_dtype"])
    _check_classes(info)
    from segxai_cli.model.checkpoint import file_sha256

    info.provenance = {**info.provenance, "imported_from": source.name, "imported_kind": kind,
                       "imported_sha256": file_sha256(source) if source.is_file() else None}
    save_checkpoint(output, net, info)
    typer.echo(f"wrote {output} ({info.family} {info.label} from a {kind}, {info.in_channels} band(s), "
               f"{info.classes} class output(s), tile {info.tile_size})")


def _stats(opts: dict[str, Any], bands: list[int], stats_from, info):
    from segxai_cli.raster.reader import open_raster_quiet
    from segxai_cli.raster.stats import BandStats, compute_band_stats

    mean, std = _floats(opts.get("band_mean"), "--band-mean"), _floats(opts.get("band_std"), "--band-std")
    if (mean is None) != (std is None):
        raise UsageError("give both --band-mean and --band-std, or neither")
    if mean is not None:
        if len(mean) != len(bands) or len(std) != len(bands) or min(std) <= 0:
            raise UsageError(f"--band-mean/--band-std: need {len(bands)} values each, std > 0")
        return BandStats(mean, std)
    if stats_from:
        stats = compute_band_stats(stats_from, bands)
        with open_raster_quiet(stats_from[0]) as src:
            info.source_dtype = src.dtypes[0]
        return stats
    return info.band_stats


def _check_classes(info) -> None:
    from segxai_cli.model.info import ModelInfo

    ModelInfo.from_meta(info.to_meta(), "import")  # the same checks a later load does, before writing

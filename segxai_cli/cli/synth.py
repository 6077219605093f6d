"""``segxai synth``: write synthetic aerial scenes and their building masks (GeoTIFF pairs)."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from segxai_cli.errors import OutputError, SegxaiError

SYNTH_HELP = """Write COUNT synthetic aerial scenes (RGB, 0.3 m, UTM 33N) and their building masks.

Scene k (k = 0..COUNT-1) uses seed SEED+k and is written as OUTDIR/<prefix>_<seed>.tif with its mask
OUTDIR/<prefix>_<seed>_mask.tif (1 = building). Scenes are placed side by side, west to east, so
they do not overlap in a GIS. The output depends only on the seed and the size.
"""


def parse_size(value: str) -> tuple[int, int]:
    """``1024`` -> (1024, 1024); ``2048x1024`` -> (2048, 1024) (width x height)."""
    parts = value.lower().replace(" ", "").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise typer.BadParameter(f"{value!r}: expected W or WxH, e.g. 1024 or 2048x1024") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise typer.BadParameter(f"{value!r}: expected W or WxH with positive integers")
    return nums[0], nums[1]


def register(app: typer.Typer) -> None:
    """Add the ``synth`` subcommand to ``app``."""

    @app.command("synth", help=SYNTH_HELP)
    def synth(
        outdir: Path = typer.Argument(..., help="Output folder (created if missing)."),
        count: int = typer.Option(1, "--count", "-n", min=1, help="Number of scenes."),
        size: str = typer.Option("1024", "--size", help="Scene size in pixels: W or WxH."),
        seed: int = typer.Option(1, "--seed", min=0, help="Seed of the first scene (the others use seed+1, ...)."),
        prefix: str = typer.Option("scene", "--prefix", help="File name prefix."),
        nodata_border: bool = typer.Option(
            False, "--nodata-border", help="Cut off one corner along a slanted edge: pixels 0, declared nodata=0, mask 0."
        ),
        dtype: str = typer.Option("uint8", "--dtype", help="uint8, or uint16 (12-bit-like: 8-bit radiometry x 16)."),
        block: int = typer.Option(1024, "--block", min=16, help="Rendering window size (memory bound); output does not depend on it."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files."),
    ) -> None:
        from segxai_cli.synth import DEFAULT_ORIGIN, write_scene

        if dtype not in ("uint8", "uint16"):
            raise typer.BadParameter(f"{dtype!r}: expected uint8 or uint16", param_hint="--dtype")
        width, height = parse_size(size)
        digits = max(2, len(str(seed + count - 1)))
        names = [f"{prefix}_{s:0{digits}d}" for s in range(seed, seed + count)]
        try:
            if outdir.exists() and not outdir.is_dir():
                raise OutputError(f"{outdir} exists and is not a folder")
            if not overwrite:  # refuse before writing anything
                for name in names:
                    for p in (outdir / f"{name}.tif", outdir / f"{name}_mask.tif"):
                        if p.exists():
                            raise OutputError(f"{p} already exists (use --overwrite to replace it)")
            outdir.mkdir(parents=True, exist_ok=True)
            # scenes side by side, with a gap of at least 1 km, on round kilometres
            stride = (math.ceil(width * 0.3 / 1000.0) + 1) * 1000.0
            for k, name in enumerate(names):
                info = write_scene(
                    outdir / f"{name}.tif",
                    outdir / f"{name}_mask.tif",
                    width,
                    height,
                    seed + k,
                    block=block,
                    origin=(DEFAULT_ORIGIN[0] + k * stride, DEFAULT_ORIGIN[1]),
                    dtype=dtype,
                    nodata_border=nodata_border,
                    overwrite=overwrite,
                )
                typer.echo(f"{info['image']}\t{info['mask']}\tbuildings {info['building_fraction']:.1%}")
        except SegxaiError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

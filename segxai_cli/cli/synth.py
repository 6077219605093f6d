"""``segxai synth``: write synthetic aerial scenes and their building masks (GeoTIFF pairs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from segxai_cli.cli import options as O
from segxai_cli.errors import UsageError

HELP = """Write COUNT synthetic aerial scenes (RGB, 0.3 m, UTM 33N) and their building masks.

Scene k (k = 0..COUNT-1) uses seed SEED+k and is written as OUTDIR/<prefix>_<seed>.tif with its mask OUTDIR/<prefix>_<seed>_mask.tif (1 = building). Scenes are placed side by side, west to east, so they do not overlap in a GIS. The output depends only on the seed and the size.

\b
Example:
  segxai synth -o sample_tiles --count 3 --size 1024 --seed 1
"""


def parse_size(value: str) -> tuple[int, int]:
    """``1024`` -> (1024, 1024); ``2048x1024`` -> (2048, 1024) (width x height)."""
    parts = value.lower().replace(" ", "").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"--size {value!r}: expected W or WxH, e.g. 1024 or 2048x1024") from None
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        raise UsageError(f"--size {value!r}: expected W or WxH with positive integers")
    return nums[0], nums[1]


def register(app: typer.Typer) -> None:
    app.command("synth", help=HELP, no_args_is_help=True)(synth)


def synth(
    output: Annotated[Path, typer.Option("-o", "--output", metavar="OUTDIR", help="Output folder (created if missing).", show_default=False)],
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Number of scenes.")] = 1,
    size: Annotated[str, typer.Option("--size", help="Scene size in pixels: W or WxH.")] = "1024",
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the first scene (the others use seed+1, ...).")] = 1,
    prefix: Annotated[str, typer.Option("--prefix", help="File name prefix.")] = "scene",
    nodata_border: Annotated[bool, typer.Option("--nodata-border", help="Cut off one corner along a slanted edge: pixels 0, declared nodata=0, mask 0.")] = False,
    dtype: Annotated[str, typer.Option("--dtype", help="uint8, or uint16 (12-bit-like: 8-bit radiometry x 16).")] = "uint8",
    block: Annotated[int, typer.Option("--block", min=16, help="Rendering window size (memory bound); the output does not depend on it.")] = 1024,
    overwrite: O.Overwrite = False,
) -> None:
    from segxai_cli.synth import write_scenes

    width, height = parse_size(size)
    for info in write_scenes(output, count, width, height, seed, prefix=prefix, dtype=dtype,
                             nodata_border=nodata_border, block=block, overwrite=overwrite):
        typer.echo(f"{info['image']}\t{info['mask']}\tbuildings {info['building_fraction']:.1%}")

"""Options several commands share, declared once (rio's ``options.py``): same names, same help.

Only typer and the light parts of segxai are imported here, so ``--help`` never loads torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from segxai_cli.cam.registry import grammar

Model = Annotated[Optional[Path], typer.Option(
    "-m", "--model", metavar="MODEL", help="Model checkpoint (.pt). Default: the bundled sample building model.", show_default=False)]
ModelArg = Annotated[Optional[Path], typer.Argument(
    metavar="[MODEL]", help="Model checkpoint (.pt). Default: the bundled sample building model.", show_default=False)]
Device = Annotated[str, typer.Option("--device", metavar="DEVICE", help="Torch device: auto (CUDA when available), cpu, cuda or cuda:N.")]
Bidx = Annotated[Optional[str], typer.Option(
    "-b", "--bidx", metavar="BANDS", help="Input bands, 1-based, comma-separated (e.g. 1,2,3). Default: the model's.", show_default=False)]
Bands = Annotated[Optional[str], typer.Option(
    "-b", "--bidx", metavar="BANDS", help="Input bands, 1-based (1,2,3), or band names (red,green,blue): STAC eo:bands common names, "
    "band descriptions or colour interpretations. Default: the model's.", show_default=False)]
Methods = Annotated[Optional[list[str]], typer.Option(
    "--method", metavar="NAME", help=f"Method(s): repeat or comma-separate. Names: {grammar()}.", show_default=False)]
Layers = Annotated[Optional[list[str]], typer.Option(
    "--layer", metavar="LAYER", help="Target layer: dotted module name or alias (decoder.N, decoder.last, bottleneck, encoder.N; "
    "see `segxai layers`). 'a+b' averages the maps of several layers; repeating --layer gives one map per "
    "layer. Default: decoder.last.", show_default=False)]
TargetClass = Annotated[Optional[str], typer.Option(
    "--class", metavar="CLASS", help="Class to explain: index or name. Default: the checkpoint's target class.", show_default=False)]
Probs = Annotated[bool, typer.Option("--probs", help="Explain the class probability instead of the logit.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
Quiet = Annotated[bool, typer.Option("-q", "--quiet", help="Only errors on stderr; no progress.")]
Verbose = Annotated[int, typer.Option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")]
Json = Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")]
BatchSize = Annotated[Optional[int], typer.Option(
    "--batch-size", metavar="N", help="Tiles per batch. Default: 16 on CUDA, 4 on CPU.", show_default=False)]
Report = Annotated[bool, typer.Option(
    "--report", help="Also write report.html in the output folder (see `segxai report`).")]
Ray = Annotated[Optional[str], typer.Option(
    "--ray", metavar="ADDRESS", help="Run the scenes on Ray workers (pip install 'segxai[ray]'): local (a private cluster "
    "on 127.0.0.1 for this run), auto (the running cluster: RAY_ADDRESS, or `ray start` on this machine) or "
    "HOST:PORT / ray://HOST:PORT. One worker per GPU (or per --workers CPU slot), each loading the model once.",
    show_default=False)]
Devices = Annotated[Optional[str], typer.Option(
    "--devices", metavar="DEVICES", help="One worker process per device, each loading the model once: cuda:0,cuda:1,… "
    "or all (every GPU here; with --ray, every GPU of the cluster).", show_default=False)]
Workers = Annotated[Optional[int], typer.Option(
    "--workers", metavar="N", help="N CPU workers (processes, or Ray actors with --ray), the cores shared among them, "
    "each loading the model once.", show_default=False)]

# Model-agnostic methods (rise, occlusion): grouped in their own help panel.
BLACKBOX_PANEL = "Model-agnostic methods (rise, occlusion)"
RiseMasks = Annotated[int, typer.Option("--rise-masks", metavar="N", rich_help_panel=BLACKBOX_PANEL, help="RISE: random masks per tile (cost: N model runs per tile).")]
RiseCells = Annotated[int, typer.Option("--rise-cells", metavar="S", rich_help_panel=BLACKBOX_PANEL, help="RISE: the masks' grid, S x S cells over the tile.")]
RiseP = Annotated[float, typer.Option("--rise-p", metavar="P", rich_help_panel=BLACKBOX_PANEL, help="RISE: probability that a cell is kept.")]
OcclusionWindow = Annotated[int, typer.Option("--occlusion-window", metavar="PX", rich_help_panel=BLACKBOX_PANEL, help="Occlusion: side of the sliding patch in pixels.")]
OcclusionStride = Annotated[int, typer.Option("--occlusion-stride", metavar="PX", rich_help_panel=BLACKBOX_PANEL, help="Occlusion: step of the patch in pixels.")]
Baseline = Annotated[float, typer.Option("--baseline", metavar="V", rich_help_panel=BLACKBOX_PANEL, help="Value of removed pixels in normalised units (0 = the band mean).")]

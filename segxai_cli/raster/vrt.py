"""The VRT XML the writer converts from: sources (pieces of a split scene, or the whole temp file),
linear or clamped rescaling, metadata. GDAL's VRT format: https://gdal.org/drivers/raster/vrt.html"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape


@dataclass(frozen=True)
class Piece:
    """Rows ``y0 .. y1`` of an output, written by one worker into a temp file of their own (a block of
    a split scene) whose first row is scene row ``origin`` (block-aligned, so every block is written once)."""

    path: Path
    y0: int
    y1: int
    origin: int


def source_xml(p: Piece, band: int, width: int, scale: tuple[float, float] | None, clamp: bool,
                nodata: str | None) -> list[str]:
    """One VRT source: rows ``p.y0 .. p.y1`` of a piece (or the whole temp file), scaled or copied."""
    h = p.y1 - p.y0
    lines = [
        "    <ComplexSource>",
        f'      <SourceFilename relativeToVRT="0">{escape(str(Path(p.path).resolve()))}</SourceFilename>',
        f"      <SourceBand>{band}</SourceBand>",
        f'      <SrcRect xOff="0" yOff="{p.y0 - p.origin}" xSize="{width}" ySize="{h}"/>',
        f'      <DstRect xOff="0" yOff="{p.y0}" xSize="{width}" ySize="{h}"/>',
    ]
    if scale is not None:
        off, ratio = scale
        lines += lut(off, ratio) if clamp else [f"      <ScaleOffset>{float(off)!r}</ScaleOffset>",
                                                 f"      <ScaleRatio>{float(ratio)!r}</ScaleRatio>"]
    if nodata is not None:
        lines.append(f"      <NODATA>{nodata}</NODATA>")
    return lines + ["    </ComplexSource>"]


def lut(off: float, ratio: float) -> list[str]:
    """``value * ratio + off`` between the values mapped to 0 and 1, constant outside (clamped)."""
    if ratio == 0:
        return ["      <ScaleOffset>0.0</ScaleOffset>", "      <ScaleRatio>0.0</ScaleRatio>"]
    lo, hi = -off / ratio, (1.0 - off) / ratio
    return [f"      <LUT>{lo!r}:0,{hi!r}:1</LUT>"]


def metadata_xml(tags: Mapping[str, str], indent: str) -> str:
    if not tags:
        return ""
    items = "".join(f'{indent}  <MDI key="{escape(k, {chr(34): "&quot;"})}">{escape(v)}</MDI>\n' for k, v in tags.items())
    return f"{indent}<Metadata>\n{items}{indent}</Metadata>"


def nodata_text(nodata: float | None) -> str | None:
    if nodata is None:
        return None
    if isinstance(nodata, float) and math.isnan(nodata):
        return "nan"
    return repr(float(nodata))

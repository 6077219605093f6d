"""QGIS layer styles (``.qml``) written beside the outputs: QGIS loads ``<same base name>.qml``
automatically when the raster is added, so the saliency shows up as a heatmap and the prediction
with named classes.

- Saliency: ``singlebandpseudocolor`` renderer on band 1 (the first method) with an interpolated
  colour ramp (transparent at 0, then blue → cyan → yellow → red) over ``[vmin, vmax]`` — [0, 1]
  for per-scene/per-tile normalised maps.
  ``<raster stem>_<band>.qml`` styles band N the same way, one file per method band.
- Prediction: ``paletted`` renderer with the checkpoint's class names as labels (the GeoTIFF also
  carries a colour table, so other GIS tools show the same colours).
- Input scene (in the run's QGIS project): RGB from the model's bands, cumulative 2–98 % cut.

The ``<pipe>`` of each style is also what the run's QGIS project embeds in its layers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import quoteattr

from segxai_cli.files import atomic_write_text

# (position in [0, 1], hex colour, alpha 0-255)
HEATMAP_STOPS: tuple[tuple[float, str, int], ...] = (
    (0.00, "#30123b", 0),
    (0.15, "#4662d7", 140),
    (0.35, "#1ae4b6", 190),
    (0.55, "#a4fc3c", 215),
    (0.75, "#fbb938", 235),
    (1.00, "#7a0403", 255),
)

# class index -> RGBA (class 0 = background, transparent); 255 = nodata (not in the table's data range)
CLASS_COLOURS: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 0, 0),
    (230, 50, 50, 255),
    (50, 120, 230, 255),
    (60, 180, 75, 255),
    (255, 225, 25, 255),
    (145, 30, 180, 255),
    (70, 240, 240, 255),
    (240, 50, 230, 255),
    (250, 190, 190, 255),
    (0, 128, 128, 255),
)


def class_colormap(n_classes: int) -> dict[int, tuple[int, int, int, int]]:
    """Colour table for a uint8 class raster: one entry per class, nodata 255 transparent."""
    cmap = {}
    for i in range(max(n_classes, 1)):
        if i < len(CLASS_COLOURS):
            cmap[i] = CLASS_COLOURS[i]
        else:  # deterministic extra colours
            cmap[i] = ((i * 67) % 256, (i * 151) % 256, (i * 211) % 256, 255)
    cmap[255] = (0, 0, 0, 0)
    return cmap


def _hex(rgb: Sequence[int]) -> str:
    return "#%02x%02x%02x" % tuple(rgb[:3])


def heatmap_qml(vmin: float = 0.0, vmax: float = 1.0, band: int = 1, opacity: float = 0.75,
                label: str = "saliency") -> str:
    """A QGIS 3 style: singlebandpseudocolor on ``band``, interpolated ramp over [vmin, vmax]."""
    return _document(heatmap_pipe(vmin, vmax, band, opacity), f"""
  <customproperties>
    <Option type="Map">
      <Option type="QString" name="segxai:layer" value={quoteattr(label)}/>
    </Option>
  </customproperties>""")


def heatmap_pipe(vmin: float = 0.0, vmax: float = 1.0, band: int = 1, opacity: float = 0.75) -> str:
    """The ``<pipe>`` of :func:`heatmap_qml` (also embedded in the QGIS project's layers)."""
    if not vmax > vmin:
        vmax = vmin + 1.0
    span = vmax - vmin
    items = "\n".join(
        f'          <item alpha="{a}" value="{vmin + p * span:.6g}" label="{vmin + p * span:.3g}" color="{c}"/>'
        for p, c, a in HEATMAP_STOPS
    )
    stops = ":".join(
        f"{p:.2f};{int(c[1:3], 16)},{int(c[3:5], 16)},{int(c[5:7], 16)},{a}" for p, c, a in HEATMAP_STOPS[1:-1]
    )
    c1, c2 = HEATMAP_STOPS[0], HEATMAP_STOPS[-1]

    def rgba(stop):
        _, c, a = stop
        return f"{int(c[1:3], 16)},{int(c[3:5], 16)},{int(c[5:7], 16)},{a}"

    return f"""<pipe>
    <provider>
      <resampling enabled="false" maxOversampling="2" zoomedInResamplingMethod="nearestNeighbour" zoomedOutResamplingMethod="nearestNeighbour"/>
    </provider>
    <rasterrenderer type="singlebandpseudocolor" band="{band}" opacity="{opacity}" alphaBand="-1" classificationMin="{vmin:.6g}" classificationMax="{vmax:.6g}" nodataColor="">
      <rasterTransparency/>
{_min_max_origin("None")}
      <rastershader>
        <colorrampshader colorRampType="INTERPOLATED" classificationMode="1" clip="0" minimumValue="{vmin:.6g}" maximumValue="{vmax:.6g}" labelPrecision="3">
          <colorramp type="gradient" name="[source]">
            <Option type="Map">
              <Option type="QString" name="color1" value="{rgba(c1)}"/>
              <Option type="QString" name="color2" value="{rgba(c2)}"/>
              <Option type="QString" name="discrete" value="0"/>
              <Option type="QString" name="rampType" value="gradient"/>
              <Option type="QString" name="stops" value="{stops}"/>
            </Option>
          </colorramp>
{items}
        </colorrampshader>
      </rastershader>
    </rasterrenderer>
{_PIPE_TAIL}
  </pipe>"""


def _min_max_origin(limits: str) -> str:
    return f"""      <minMaxOrigin>
        <limits>{limits}</limits>
        <extent>WholeRaster</extent>
        <statAccuracy>Estimated</statAccuracy>
        <cumulativeCutLower>0.02</cumulativeCutLower>
        <cumulativeCutUpper>0.98</cumulativeCutUpper>
        <stdDevFactor>2</stdDevFactor>
      </minMaxOrigin>"""


_PIPE_TAIL = """    <brightnesscontrast brightness="0" contrast="0" gamma="1"/>
    <huesaturation saturation="0" colorizeOn="0" colorizeRed="255" colorizeGreen="128" colorizeBlue="128" colorizeStrength="100" grayscaleMode="0" invertColors="0"/>
    <rasterresampler maxOversampling="2"/>
    <resamplingStage>resamplingFilter</resamplingStage>"""


def _document(pipe: str, extra: str = "") -> str:
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis version="3.22.0" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0">
  {pipe}
  <blendMode>0</blendMode>{extra}
</qgis>
"""


def paletted_qml(class_names: Sequence[str], opacity: float = 0.6) -> str:
    """A QGIS 3 style for the class raster: paletted renderer, labels = class names."""
    return _document(paletted_pipe(class_names, opacity))


def paletted_pipe(class_names: Sequence[str], opacity: float = 0.6) -> str:
    """The ``<pipe>`` of :func:`paletted_qml`."""
    cmap = class_colormap(len(class_names))
    entries = "\n".join(
        f'        <paletteEntry value="{i}" color="{_hex(cmap[i])}" alpha="{cmap[i][3]}" label={quoteattr(str(name))}/>'
        for i, name in enumerate(class_names)
    )
    return f"""<pipe>
    <rasterrenderer type="paletted" band="1" opacity="{opacity}" alphaBand="-1" nodataColor="">
      <rasterTransparency/>
{_min_max_origin("None")}
      <colorPalette>
{entries}
      </colorPalette>
    </rasterrenderer>
{_PIPE_TAIL}
  </pipe>"""


def rgb_pipe(bands: Sequence[int], cuts: Sequence[tuple[float, float]]) -> str:
    """The ``<pipe>`` of an input scene as QGIS shows it by default: bands as red, green, blue (one
    band: grey), each stretched between its cumulative 2–98 % cut values ``cuts``."""

    def enhancement(tag: str, lo: float, hi: float) -> str:
        return (f"      <{tag}>\n        <minValue>{lo:.6g}</minValue>\n        <maxValue>{hi:.6g}</maxValue>\n"
                f"        <algorithm>StretchToMinimumMaximum</algorithm>\n      </{tag}>")

    if len(bands) >= 3:
        head = (f'<rasterrenderer type="multibandcolor" opacity="1" alphaBand="-1" redBand="{bands[0]}" '
                f'greenBand="{bands[1]}" blueBand="{bands[2]}" nodataColor="">')
        body = "\n".join(enhancement(f"{c}ContrastEnhancement", *cut) for c, cut in zip(("red", "green", "blue"), cuts))
    else:
        head = f'<rasterrenderer type="singlebandgray" opacity="1" alphaBand="-1" grayBand="{bands[0]}" gradient="BlackToWhite" nodataColor="">'
        body = enhancement("contrastEnhancement", *cuts[0])
    return f"""<pipe>
    {head}
      <rasterTransparency/>
{_min_max_origin("CumulativeCut")}
{body}
    </rasterrenderer>
{_PIPE_TAIL}
  </pipe>"""


def band_style_path(raster: Path, band_name: str) -> Path:
    """``<raster stem>_<band>.qml``: the style of one method band, for users who open single files."""
    safe = "".join(c if c.isalnum() or c in "+-_.@" else "_" for c in band_name)
    return Path(raster).with_name(f"{Path(raster).stem}_{safe}.qml")


def palette_aux_xml(class_names: Sequence[str]) -> str:
    """A GDAL PAM sidecar (``<raster>.aux.xml``) holding the class colour table *with alpha*.

    A TIFF colour map cannot hold alpha (GDAL writes 255 for every entry), so a palette stored in the
    GeoTIFF would paint the background class opaque over the imagery. GDAL — and so QGIS, rasterio,
    gdalinfo — reads the colour table from this sidecar when the TIFF has none: the background class
    is transparent even without the ``.qml``.
    """
    cmap = class_colormap(len(class_names))
    entries = "\n".join(
        f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>' for i in range(256)
        for r, g, b, a in [cmap.get(i, (0, 0, 0, 0))]
    )
    return (
        "<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <ColorInterp>Palette</ColorInterp>\n"
        f"    <ColorTable>\n{entries}\n    </ColorTable>\n  </PAMRasterBand>\n</PAMDataset>\n"
    )


def heatmap_style_path(raster: Path) -> Path:
    return Path(raster).with_suffix(".qml")


def write_heatmap_style(raster: Path, vmin: float = 0.0, vmax: float = 1.0, label: str = "saliency") -> Path:
    """Write ``<raster stem>.qml`` beside ``raster`` (atomically)."""
    return atomic_write_text(heatmap_style_path(raster), heatmap_qml(vmin, vmax, label=label))


def write_class_style(raster: Path, class_names: Sequence[str]) -> Path:
    return atomic_write_text(Path(raster).with_suffix(".qml"), paletted_qml(class_names))


def write_band_styles(raster: Path, band_names: Sequence[str], vmax: Sequence[float]) -> dict[str, Path]:
    """One heatmap ``.qml`` per band (band i styled on band i, ramp over [0, vmax[i]]), named by
    :func:`band_style_path`."""
    return {name: atomic_write_text(band_style_path(raster, name), heatmap_qml(0.0, top, band=i, label=name))
            for i, (name, top) in enumerate(zip(band_names, vmax), 1)}

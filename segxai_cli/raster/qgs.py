"""A QGIS project file (``.qgs``, QGIS 3.22+) written as plain XML: raster layers in nested groups.

No QGIS is needed to write it. Paths are stored relative to the project (``./x.tif``,
``../scenes/a.tif``), so the folder can be moved or shared; every layer carries its style (the
``<pipe>`` of :mod:`segxai_cli.raster.style`). A group can be *mutually exclusive* (QGIS's radio
group: checking one child unchecks the others).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union
from xml.sax.saxutils import escape, quoteattr

Extent = tuple[float, float, float, float]  # xmin, ymin, xmax, ymax


@dataclass(frozen=True)
class Crs:
    """A CRS as the project stores it: WKT (what QGIS reads first), plus its authority id if known."""

    wkt: str = ""
    authid: str = ""

    def xml(self, indent: str) -> str:
        if not self.wkt and not self.authid:
            return f"{indent}<spatialrefsys/>"
        return (f"{indent}<spatialrefsys nativeFormat=\"Wkt\">\n{indent}  <wkt>{escape(self.wkt)}</wkt>\n"
                f"{indent}  <authid>{escape(self.authid)}</authid>\n{indent}</spatialrefsys>")


@dataclass
class Layer:
    """A raster layer: ``source`` as written in the project (see :func:`relative_source`)."""

    id: str
    name: str
    source: str
    crs: Crs
    extent: Extent
    pipe: str
    checked: bool = True


@dataclass
class Group:
    name: str
    children: list[Union["Group", Layer]] = field(default_factory=list)
    exclusive: bool = False  # radio group: only the first child is checked
    checked: bool = True
    expanded: bool = True


def relative_source(location: str, project_dir: Path) -> str:
    """``./name`` or ``../…`` for local files (QGIS resolves them against the project), else as given."""
    if "://" in location or location.startswith("/vsi"):
        return location
    try:
        rel = os.path.relpath(Path(location).resolve(), Path(project_dir).resolve())
    except ValueError:  # another drive (Windows)
        return str(Path(location).resolve())
    rel = rel.replace(os.sep, "/")
    return rel if rel.startswith("../") else f"./{rel}"


def _checked(flag: bool) -> str:
    return "Qt::Checked" if flag else "Qt::Unchecked"


def _tree(node: Union[Group, Layer], indent: str) -> str:
    if isinstance(node, Layer):
        return (f'{indent}<layer-tree-layer id={quoteattr(node.id)} name={quoteattr(node.name)} '
                f'source={quoteattr(node.source)} providerKey="gdal" checked="{_checked(node.checked)}" '
                f'expanded="1" legend_exp="">\n{indent}  <customproperties/>\n{indent}</layer-tree-layer>')
    exclusive = ' mutually-exclusive="1" mutually-exclusive-child="0"' if node.exclusive else ""
    kids = "\n".join(_tree(c, indent + "  ") for c in node.children)
    return (f'{indent}<layer-tree-group name={quoteattr(node.name)} checked="{_checked(node.checked)}" '
            f'expanded="{int(node.expanded)}"{exclusive}>\n{indent}  <customproperties/>\n{kids}\n{indent}</layer-tree-group>')


def _layers(node: Union[Group, Layer]) -> list[Layer]:
    if isinstance(node, Layer):
        return [node]
    return [lyr for c in node.children for lyr in _layers(c)]


def _extent(e: Extent, indent: str) -> str:
    return (f"{indent}<extent>\n" + "".join(f"{indent}  <{k}>{v!r}</{k}>\n" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), e))
            + f"{indent}</extent>")


def _maplayer(lyr: Layer) -> str:
    return f"""    <maplayer type="raster" hasScaleBasedVisibilityFlag="0" minScale="1e+08" maxScale="0" autoRefreshEnabled="0" refreshOnNotifyEnabled="0">
{_extent(lyr.extent, "      ")}
      <id>{escape(lyr.id)}</id>
      <datasource>{escape(lyr.source)}</datasource>
      <layername>{escape(lyr.name)}</layername>
      <srs>
{lyr.crs.xml("        ")}
      </srs>
      <provider>gdal</provider>
      {lyr.pipe}
      <blendMode>0</blendMode>
    </maplayer>"""


def union(extents: list[Extent]) -> Optional[Extent]:
    if not extents:
        return None
    return (min(e[0] for e in extents), min(e[1] for e in extents), max(e[2] for e in extents), max(e[3] for e in extents))


def project_xml(title: str, tree: list[Union[Group, Layer]], crs: Crs, extent: Optional[Extent]) -> str:
    """The ``.qgs`` document: ``tree`` top to bottom is QGIS's drawing order (the first is drawn on top)."""
    root = Group("", tree)
    layers = _layers(root)
    kids = "\n".join(_tree(c, "    ") for c in tree)
    canvas_extent = _extent(extent or union([lyr.extent for lyr in layers]) or (0.0, 0.0, 1.0, 1.0), "    ")
    maplayers = "\n".join(_maplayer(lyr) for lyr in layers)
    return f"""<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis projectname={quoteattr(title)} version="3.22.0">
  <homePath path=""/>
  <title>{escape(title)}</title>
  <projectCrs>
{crs.xml("    ")}
  </projectCrs>
  <layer-tree-group>
    <customproperties/>
{kids}
  </layer-tree-group>
  <mapcanvas name="theMapCanvas" annotationsVisible="1">
    <units>meters</units>
{canvas_extent}
    <rotation>0</rotation>
    <destinationsrs>
{crs.xml("      ")}
    </destinationsrs>
    <rendermaptile>0</rendermaptile>
  </mapcanvas>
  <projectlayers>
{maplayers}
  </projectlayers>
  <properties>
    <Paths>
      <Absolute type="bool">false</Absolute>
    </Paths>
    <SpatialRefSys>
      <ProjectionsEnabled type="int">1</ProjectionsEnabled>
    </SpatialRefSys>
  </properties>
</qgis>
"""

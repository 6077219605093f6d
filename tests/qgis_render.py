"""Open a segxai QGIS project headless with QGIS's own Python API and report what QGIS sees.

Run on the system Python with Debian's python3-qgis (not in the uv environment)::

    QT_QPA_PLATFORM=offscreen /usr/bin/python3 tests/qgis_render.py OUT/segxai.qgs [MAP.png] [LAYOUT.png]

Prints one JSON line: the layers (valid, CRS, renderer, band), the layer tree (groups, radio
groups, checked layers) and, for the first scene's group rendered to MAP.png, how many pixels are
not background. LAYOUT.png (optional) is a print layout of the first scene with its legend — the
picture in docs/.
"""

import json
import os
import sys

from qgis.core import (Qgis, QgsApplication, QgsLayerTree, QgsLayerTreeGroup, QgsLayerTreeLayer, QgsLayoutExporter, QgsLayoutItemLegend,
                       QgsLayoutItemMap, QgsLayoutItemLabel, QgsLayoutPoint, QgsLayoutSize, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsPrintLayout, QgsProject, QgsUnitTypes)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QFont


def tree(node):
    if isinstance(node, QgsLayerTreeLayer):
        return {"layer": node.layerId(), "name": node.name(), "checked": node.isVisible()}
    return {"group": node.name(), "exclusive": node.isMutuallyExclusive(), "checked": node.isVisible(),
            "children": [tree(c) for c in node.children()]}


def layer_info(lyr):
    r = lyr.renderer()
    band = None
    if r is not None and hasattr(r, "band"):
        band = r.band()
    items = []
    if r is not None and r.type() == "singlebandpseudocolor":
        items = [i.label for i in r.shader().rasterShaderFunction().colorRampItemList()]
    e = lyr.extent()
    return {"name": lyr.name(), "valid": lyr.isValid(), "crs": lyr.crs().authid(), "source": lyr.source(),
            "renderer": r.type() if r else None, "band": band, "legend": items, "bands": lyr.bandCount(),
            "extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()]}


def render(layers, extent, crs, path, size=512):
    settings = QgsMapSettings()
    settings.setLayers(layers)
    settings.setDestinationCrs(crs)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(size, size))
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererSequentialJob(settings)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    img.save(path)
    colours, filled = set(), 0
    for y in range(0, img.height(), 4):
        for x in range(0, img.width(), 4):
            px = img.pixel(x, y)
            colours.add(px)
            filled += (px & 0xFFFFFF) != 0xFFFFFF
    return {"distinct_colours": len(colours), "non_background": filled / max(1, len(range(0, img.height(), 4)) * len(range(0, img.width(), 4)))}


def layout(project, group, path):
    lay = QgsPrintLayout(project)
    lay.initializeDefaults()
    page = lay.pageCollection().page(0)
    page.setPageSize(QgsLayoutSize(297, 215, QgsUnitTypes.LayoutMillimeters))
    title = QgsLayoutItemLabel(lay)
    title.setText(f"segxai.qgs in QGIS {Qgis.QGIS_VERSION.split('-')[0]}: the group of scene '{group.name()}'")
    title.setFont(QFont("DejaVu Sans", 14))
    lay.addLayoutItem(title)
    title.attemptMove(QgsLayoutPoint(8, 5, QgsUnitTypes.LayoutMillimeters))
    title.attemptResize(QgsLayoutSize(270, 10, QgsUnitTypes.LayoutMillimeters))
    mp = QgsLayoutItemMap(lay)
    lay.addLayoutItem(mp)
    mp.attemptMove(QgsLayoutPoint(8, 17, QgsUnitTypes.LayoutMillimeters))
    mp.attemptResize(QgsLayoutSize(190, 190, QgsUnitTypes.LayoutMillimeters))
    layers = [n.layer() for n in group.findLayers() if n.isVisible()]
    mp.setLayers(layers)
    mp.setKeepLayerSet(True)
    mp.setExtent(layers[-1].extent())
    legend = QgsLayoutItemLegend(lay)
    legend.setTitle("Layers")
    legend.setLinkedMap(mp)
    legend.setAutoUpdateModel(False)  # the first scene's group only
    only = QgsLayerTree()
    only.addChildNode(group.clone())
    legend.model().setRootGroup(only)
    lay.addLayoutItem(legend)
    legend.attemptMove(QgsLayoutPoint(203, 17, QgsUnitTypes.LayoutMillimeters))
    exporter = QgsLayoutExporter(lay)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    return exporter.exportToImage(path, settings) == QgsLayoutExporter.Success


def main():
    app = QgsApplication([], False)
    app.initQgis()
    project = QgsProject.instance()
    out = {"read": project.read(sys.argv[1])}
    out["crs"] = project.crs().authid()
    out["layers"] = {lid: layer_info(lyr) for lid, lyr in project.mapLayers().items()}
    root = project.layerTreeRoot()
    out["tree"] = [tree(c) for c in root.children()]
    first = next((c for c in root.children() if isinstance(c, QgsLayerTreeGroup)), None)
    if first is not None and len(sys.argv) > 2:
        visible = [n.layer() for n in first.findLayers() if n.isVisible()]
        out["rendered_layers"] = [lyr.name() for lyr in visible]
        out["render"] = render(visible, visible[-1].extent(), project.crs(), sys.argv[2])
        if len(sys.argv) > 3:
            out["layout"] = layout(project, first, sys.argv[3])
    print(json.dumps(out), flush=True)
    os._exit(0)  # exitQgis() may crash at teardown when headless; the result is already out


if __name__ == "__main__":
    main()

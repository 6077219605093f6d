"""``segxai.qgs``: the run as a QGIS project — written without QGIS, checked as XML here and, where
Debian's python3-qgis is installed, loaded and rendered headless by QGIS itself."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from test_qgis import HAS_QGIS, SYSTEM_PYTHON

RENDER_SCRIPT = Path(__file__).with_name("qgis_render.py")


def test_project_has_a_group_per_scene_with_methods_as_a_radio_group(analyst_run):
    root = ET.parse(analyst_run / "segxai.qgs").getroot()
    assert root.find("properties/Paths/Absolute").text == "false"
    assert root.find("projectCrs/spatialrefsys/authid").text == "EPSG:32633"
    scenes = root.findall("layer-tree-group/layer-tree-group")
    assert [g.get("name") for g in scenes] == ["a", "b"]
    for g in scenes:
        sal, pred, inp = list(g)[1:]  # after <customproperties>
        assert sal.get("name") == "saliency" and sal.get("mutually-exclusive") == "1"
        assert sal.get("mutually-exclusive-child") == "0"
        methods = sal.findall("layer-tree-layer")
        assert [m.get("name") for m in methods] == ["gradcam", "hirescam"]
        assert [m.get("checked") for m in methods] == ["Qt::Checked", "Qt::Unchecked"]
        assert {m.get("source") for m in methods} == {f"./{g.get('name')}_saliency.tif"}
        assert (pred.get("name"), inp.get("name")) == ("prediction", "input")
        assert inp.get("source") == f"../scenes/{g.get('name')}.tif"
    layers = {m.find("id").text: m for m in root.iter("maplayer")}
    assert len(layers) == 2 * 4
    for lyr in layers.values():  # every relative source resolves from the project's folder
        assert (analyst_run / lyr.find("datasource").text).resolve().is_file()
    renderer = {i: layers[i].find("pipe/rasterrenderer") for i in layers}
    assert renderer["segxai_a_saliency_2"].get("band") == "2"
    assert renderer["segxai_a_prediction"].get("type") == "paletted"
    rgb = renderer["segxai_a_input"]
    assert rgb.get("type") == "multibandcolor" and rgb.find("minMaxOrigin/limits").text == "CumulativeCut"
    rec = json.loads((analyst_run / "a_saliency.json").read_text())
    lo, hi = rec["published"]["input_stretch"][0]
    assert float(rgb.find("redContrastEnhancement/minValue").text) == pytest.approx(lo, rel=1e-5)
    assert float(rgb.find("redContrastEnhancement/maxValue").text) == pytest.approx(hi, rel=1e-5)


@pytest.mark.skipif(not HAS_QGIS, reason="QGIS Python API (Debian python3-qgis) not installed")
def test_qgis_loads_the_moved_project_and_renders_the_first_scene(analyst_run, tmp_path):
    moved = tmp_path / "moved"  # relative paths: the folder and its scenes can move together
    shutil.copytree(analyst_run.parent / "scenes", moved / "scenes")
    shutil.copytree(analyst_run, moved / "out")
    png = tmp_path / "map.png"
    proc = subprocess.run([SYSTEM_PYTHON, str(RENDER_SCRIPT), str(moved / "out" / "segxai.qgs"), str(png)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["read"] and res["crs"] == "EPSG:32633"
    layers = res["layers"]
    assert len(layers) == 8
    for lid, lyr in layers.items():
        assert lyr["valid"], lid
        assert lyr["crs"] == "EPSG:32633"
        assert lyr["source"].startswith(str(moved))
    assert layers["segxai_a_saliency_1"]["renderer"] == "singlebandpseudocolor"
    assert layers["segxai_a_saliency_2"]["band"] == 2 and len(layers["segxai_a_saliency_2"]["legend"]) >= 2
    assert layers["segxai_a_prediction"]["renderer"] == "paletted"
    assert layers["segxai_a_input"]["renderer"] == "multibandcolor"
    a = res["tree"][0]
    assert a["group"] == "a" and a["children"][0]["exclusive"]
    assert [c["checked"] for c in a["children"][0]["children"]] == [True, False]
    assert res["rendered_layers"] == ["gradcam", "prediction", "input"]
    # a 4:3 scene in a square image: 3/4 of it is map
    assert res["render"]["non_background"] > 0.7 and res["render"]["distinct_colours"] > 100
    assert Image.open(png).size == (512, 512)


def test_unreadable_or_moved_files_are_left_out_with_a_log_line(analyst_run, tmp_path, caplog):
    from segxai_cli.explain.records import read_record
    from segxai_cli.explain.run_outputs import write_run_outputs

    out = tmp_path / "out"
    shutil.copytree(analyst_run, out)
    (out / "b_saliency.tif").write_bytes(b"not a tiff")
    records = [read_record(p) for p in sorted(out.glob("*_saliency.json"))]
    records[0]["input"] = str(tmp_path / "moved_away.tif")
    log = logging.getLogger("segxai")  # the CLI's logging set-up may have replaced the root handlers
    log.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="segxai")
    try:
        assert write_run_outputs(out, records)["qgis_project"] == out / "segxai.qgs"
    finally:
        log.removeHandler(caplog.handler)
    root = ET.parse(out / "segxai.qgs").getroot()
    assert [g.get("name") for g in root.findall("layer-tree-group/layer-tree-group")] == ["a"]
    assert {lyr.find("layername").text for lyr in root.iter("maplayer")} == {"gradcam", "hirescam", "prediction"}
    assert "left out of the QGIS project" in caplog.text and "input not added" in caplog.text

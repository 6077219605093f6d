"""The outputs in real clients: QGIS (headless, its Python API) and GDAL's own COG validator.

Both run on the system Python 3 (Debian ``python3-qgis`` / ``python3-gdal``), not in the uv
environment, through a subprocess; the tests skip cleanly where they are not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest
import rasterio

from segxai_cli.explain import explain_scene
from segxai_cli.raster.writer import StreamingWriter
from segxai_cli.synth import generate_scene

SYSTEM_PYTHON = "/usr/bin/python3"


def _system_python_has(module: str) -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", f"import {module}"], capture_output=True, timeout=120, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


HAS_QGIS = _system_python_has("qgis.core")
HAS_GDAL_VALIDATOR = _system_python_has("osgeo_utils.samples.validate_cloud_optimized_geotiff")

QGIS_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    from qgis.core import QgsApplication, QgsRasterLayer
    app = QgsApplication([], False)
    app.initQgis()
    out = {}
    for key, path in (("saliency", sys.argv[1]), ("prediction", sys.argv[2]), ("input", sys.argv[3])):
        lyr = QgsRasterLayer(path, key)  # loads <name>.qml beside the raster as its default style
        e = lyr.extent()
        out[key] = {
            "valid": lyr.isValid(),
            "renderer": lyr.renderer().type() if lyr.renderer() else None,
            "extent": [e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()],
            "crs": lyr.crs().authid(),
            "size": [lyr.width(), lyr.height()],
            "bands": lyr.bandCount(),
            "band1": lyr.bandName(1),
        }
        if key == "saliency":
            shader = lyr.renderer().shader().rasterShaderFunction()
            out[key]["ramp"] = [shader.minimumValue(), shader.maximumValue(), len(shader.colorRampItemList())]
    print(json.dumps(out), flush=True)
    os._exit(0)  # exitQgis() may crash at teardown when headless; the result is already out
    """
)


@pytest.fixture(scope="module")
def explained(tmp_path_factory):
    import torch

    from conftest import tiny_model_info, write_geotiff
    from segxai_cli.model.families import build_model

    tmp = tmp_path_factory.mktemp("qgis")
    torch.manual_seed(0)
    info = tiny_model_info()
    model = build_model(info).eval()
    img, _, _ = generate_scene(150, 130, 3, nodata_border=True)
    scene = write_geotiff(tmp / "scene.tif", img, nodata=0)
    r = explain_scene(scene, tmp / "out", model=(model, info), methods=["gradcam", "hirescam"])
    return scene, r


@pytest.mark.skipif(not HAS_QGIS, reason="QGIS Python API (Debian python3-qgis) not installed")
def test_outputs_open_in_qgis_as_heatmap_exactly_on_the_input(explained):
    scene, r = explained
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run(
        [SYSTEM_PYTHON, "-c", QGIS_SCRIPT, str(r.saliency), str(r.prediction), str(scene)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    sal, pred, inp = res["saliency"], res["prediction"], res["input"]
    assert sal["valid"] and pred["valid"] and inp["valid"]
    assert sal["renderer"] == "singlebandpseudocolor"  # the .qml was applied on load
    assert sal["ramp"][0] == 0 and sal["ramp"][1] == 1 and sal["ramp"][2] >= 2
    assert pred["renderer"] == "paletted"
    assert sal["crs"] == pred["crs"] == inp["crs"] == "EPSG:32633"
    for out in (sal, pred):
        assert out["size"] == inp["size"]
        np.testing.assert_allclose(out["extent"], inp["extent"], rtol=0, atol=1e-6)
    assert sal["bands"] == 2 and "gradcam" in sal["band1"]


@pytest.mark.skipif(not HAS_GDAL_VALIDATOR, reason="GDAL's validate_cloud_optimized_geotiff (python3-gdal) not installed")
def test_gdal_validates_the_cogs(explained, tmp_path):
    _, r = explained
    # plus a raster large enough to carry overviews
    big = tmp_path / "big.tif"
    w = StreamingWriter(big, width=1100, height=700, count=1, dtype="float32", nodata=float("nan"),
                        crs=rasterio.crs.CRS.from_epsg(32633), transform=rasterio.transform.from_origin(0, 0, 1, 1))
    with w:
        for row in range(0, 700, 256):
            w.write(row, np.random.default_rng(row).random((1, min(256, 700 - row), 1100), dtype=np.float32))
    w.finalize()
    w.commit()  # finalize leaves the checked COG under its temp name
    for path in (r.saliency, r.prediction, big):
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-m", "osgeo_utils.samples.validate_cloud_optimized_geotiff", "--full-check=yes", str(path)],
            capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "is a valid cloud optimized GeoTIFF" in proc.stdout


@pytest.mark.skipif(shutil.which("gdalinfo") is None, reason="gdalinfo not installed")
def test_gdalinfo_sees_layout_cog_and_band_descriptions(explained):
    _, r = explained
    proc = subprocess.run(["gdalinfo", "-json", str(r.saliency)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    info = json.loads(proc.stdout)
    assert info["metadata"]["IMAGE_STRUCTURE"]["LAYOUT"] == "COG"
    assert [b["description"] for b in info["bands"]] == ["gradcam", "hirescam"]

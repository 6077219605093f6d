"""The HTML report of an output folder: what it shows, that it needs nothing but its folder, and the
deletion/insertion curves it plots (checked against the tidy CSV)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from segxai_cli.cli.app import app
from segxai_cli.report import build_report

runner = CliRunner()


def _refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_report_shows_run_scenes_and_study_and_needs_no_network(analyst_run):
    html = (analyst_run / "report.html").read_text()
    for text in ("<h2>Run</h2>", "gradcam, hirescam", "decoder.last", "megapixels/s", "torch ", 'id="scene-table"',
                 "Faithfulness study: study (evaluate)", "M1 drop", "M1 ΔIoU", "Deletion and insertion curves",
                 "Sanity check", "segxai.qgs"):
        assert text in html, text
    table = html.split('id="scene-table"')[1].split("</table>")[0]
    assert table.count("<tr>") == 3  # header + two scenes
    assert not re.search(r'(src|href)="(https?:)?//', html) and "@import" not in html
    refs = _refs(html)
    assert sum(r.startswith("data:image/png;base64,") for r in refs) >= 2  # the study's figures
    files = [r for r in refs if not r.startswith(("data:", "#"))]
    assert "a_quicklook.png" in files and "b_quicklook_hirescam.png" in files
    for r in files:
        assert (analyst_run / r).is_file(), r


def test_report_elsewhere_links_back_to_the_folder(analyst_run, tmp_path):
    res = runner.invoke(app, ["report", str(analyst_run), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text()
    files = [r for r in _refs(html) if not r.startswith(("data:", "#"))]
    assert files and all((tmp_path / r).resolve().is_file() for r in files)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_curves_csv_agrees_with_the_tidy_rows(analyst_run):
    tidy = [r for r in _rows(analyst_run / "study.csv") if r["mode"] == "M1" and r["empty_target"] == "False"]
    curves = _rows(analyst_run / "study_curves.csv")
    assert {(c["method"], c["curve"]) for c in curves} == {(m, k) for m in ("gradcam", "hirescam")
                                                          for k in ("deletion", "insertion")}
    for method in ("gradcam", "hirescam"):
        rows = [r for r in tidy if r["method"] == method]
        full = np.mean([float(r["confidence_full"]) for r in rows])
        c = {(x["curve"], float(x["fraction"])): float(x["mean"]) for x in curves if x["method"] == method}
        assert sorted({f for _, f in c}) == [0.0, 0.5, 1.0]  # --curve-steps 2
        # nothing removed / everything inserted = the full tile
        assert c["deletion", 0.0] == pytest.approx(full, rel=1e-5) and c["insertion", 1.0] == pytest.approx(full, rel=1e-5)
        # the mean of the trapezoid areas is the area under the mean curve
        for kind in ("deletion", "insertion"):
            area = np.trapezoid([c[kind, f] for f in (0.0, 0.5, 1.0)], [0.0, 0.5, 1.0])
            assert area == pytest.approx(np.mean([float(r[f"{kind}_auc"]) for r in rows]), rel=1e-4)
    meta = json.loads((analyst_run / "study.json").read_text())
    assert meta["outputs"]["curves"].endswith("study_curves.csv")


def test_explain_report_option(tmp_path, make_geotiff, tiny_checkpoint):
    from segxai_cli.synth import generate_scene

    img, _, _ = generate_scene(64, 64, 3)
    scene = make_geotiff("s.tif", img)
    res = runner.invoke(app, ["explain", str(scene), "-m", str(tiny_checkpoint), "-o", str(tmp_path / "out"),
                              "--method", "gradcam", "--report", "--json", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["report"] == str(tmp_path / "out" / "report.html")
    assert "s_quicklook.png" in (tmp_path / "out" / "report.html").read_text()
    assert build_report(tmp_path / "out") == tmp_path / "out" / "report.html"  # rebuilt, no --overwrite needed

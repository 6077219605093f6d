"""Remake the pictures of docs/img from an output folder (see docs/report.md for the commands).

    uv run python docs/img/screenshots.py out/

report.png / report_study.png: Chromium (Debian's package, via Playwright) on out/report.html;
qgis.png: QGIS's print layout of out/segxai.qgs (tests/qgis_render.py on the system python3-qgis).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def shrink(path: Path, width: int) -> None:
    img = Image.open(path).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(256, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def main(out: Path) -> None:
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path="/usr/bin/chromium", headless=True,
                                                    args=FLAGS, viewport={"width": 1280, "height": 1100})
        page = ctx.new_page()
        page.goto((out / "report.html").as_uri(), wait_until="load")
        page.screenshot(path=str(HERE / "report.png"))
        study = page.locator("section[id^=study]").first
        if study.count():
            box = study.evaluate("el => { const r = el.getBoundingClientRect();"
                                 " return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: 1250}; }")
            page.screenshot(path=str(HERE / "report_study.png"), full_page=True, clip=box)
        ctx.close()
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["/usr/bin/python3", str(HERE.parent.parent / "tests" / "qgis_render.py"), str(out / "segxai.qgs"),
                        str(Path(tmp) / "map.png"), str(HERE / "qgis.png")], check=True,
                       env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), stdout=subprocess.DEVNULL)
    for name in ("report.png", "report_study.png", "qgis.png"):
        if (HERE / name).exists():
            shrink(HERE / name, 1280)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())

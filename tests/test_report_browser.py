"""``report.html`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright
opens it from ``file://`` with the network closed. Skipped where no Chromium is installed
(``.ci/run`` installs it when it runs as root)."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed (Debian package chromium)")


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                    headless=True, args=FLAGS, viewport={"width": 1280, "height": 900})
        try:
            pg = ctx.new_page()
            pg.problems = []
            pg.on("console", lambda m: m.type == "error" and pg.problems.append(f"console: {m.text}"))
            pg.on("pageerror", lambda exc: pg.problems.append(f"page error: {exc}"))
            pg.on("requestfailed", lambda r: pg.problems.append(f"request failed: {r.url}"))
            pg.on("request", lambda r: r.url.startswith(("file:", "data:")) or pg.problems.append(f"network: {r.url}"))
            yield pg
        finally:
            ctx.close()


def _scene_names(page) -> list[str]:
    return page.eval_on_selector_all("#scene-table tbody tr", "rows => rows.map(r => r.cells[1].textContent.trim())")


def test_report_opens_from_file_images_load_table_sorts(analyst_run, page):
    page.goto((analyst_run / "report.html").as_uri(), wait_until="load")
    images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src').slice(0, 40), e.complete, e.naturalWidth])")
    assert len(images) >= 2 + 2 + 2  # thumbnails, panels, study figures
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == []
    assert _scene_names(page) == ["a", "b"]
    size = page.locator("#scene-table th", has_text="size (px)")
    size.click()  # ascending by pixel count: b (96 x 64) before a (128 x 96)
    assert _scene_names(page) == ["b", "a"]
    assert size.get_attribute("aria-sort") == "ascending"
    size.click()
    assert _scene_names(page) == ["a", "b"]
    page.locator("#scene-table th", has_text="scene").click()
    assert _scene_names(page) == ["a", "b"]
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB"))
    assert shot.shape[0] > 900 and shot.std() > 20  # not blank: text, pictures, figures
    assert len(np.unique(shot.reshape(-1, 3)[::7], axis=0)) > 500
    assert page.problems == []

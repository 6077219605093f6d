"""``<stem>_quicklook.png`` (the input, the prediction and every method side by side) and
``<stem>_quicklook_<band>.png`` per method band: the scene with the saliency heatmap blended over it,
the predicted class outlined and a colour bar.

Rendered once the COGs are finalized (made and checked, not yet renamed), from their overviews (:func:`~segxai_cli.raster.display.read_preview`):
a 10 000 × 10 000 scene is never in memory at full resolution. Each map is shown with a percentile
stretch (2–98 % of its non-zero values) so sparse maps stay visible; the COG keeps the unstretched data.

Quicklooks are optional files: :meth:`files` lists none, so a scene without them (``--no-quicklook``,
or larger than :data:`QUICKLOOK_MAX_MEGAPIXELS` by default) is still complete; the record lists the
ones written (``published.quicklooks``).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.files import Staged

if TYPE_CHECKING:
    from segxai_cli.explain.pipeline import SceneStats

QUICKLOOK_MAX_MEGAPIXELS = 1024.0  # default cap (~32 000 × 32 000 px); --quicklook renders any size
SIDE = 512  # long side of the per-method image, in pixels
OUTLINE_RGB = (255, 255, 255)
PANEL_COLUMNS = 4  # at most, per row


def quicklook_path(outdir: Path, stem: str, band: str | None = None) -> Path:
    """The panel (``band=None``) or one method band's quicklook."""
    if band is None:
        return outdir / f"{stem}_quicklook.png"
    safe = "".join(c if c.isalnum() or c in "+-_.@" else "_" for c in band)
    return outdir / f"{stem}_quicklook_{safe}.png"


class QuicklookOutput(SceneOutput):
    kind = "quicklook"

    def __init__(self, scene: SceneContext) -> None:
        super().__init__(scene)
        want = scene.opts.quicklook
        self.enabled = want if want is not None else scene.width * scene.height / 1e6 <= QUICKLOOK_MAX_MEGAPIXELS
        self.staged: list[Staged] = []

    def finalize(self, stats: "SceneStats") -> dict[str, Any]:
        if not self.enabled:
            return {}
        sc, stem = self.scene, self.scene.source.stem
        views = load_views(sc, sc.finalized["saliency"], sc.finalized["prediction"])
        names = sc.opts.band_names
        target = f"{sc.opts.class_name} outlined"
        written = {}
        for i, name in enumerate(names):
            path = quicklook_path(sc.outdir, stem, name)
            self.staged.append(Staged(path, band_figure(views, i, f"{stem} · {name} · {target}")))
            written[name] = path.name
        panel = quicklook_path(sc.outdir, stem)
        self.staged.append(Staged(panel, panel_figure(views, names, f"{stem} · class {target}")))
        return {"quicklooks": {"panel": panel.name, "bands": written},
                "input_stretch": [list(c) for c in views.cuts]}

    def commit(self) -> list[Path]:
        return [s.commit() for s in self.staged]

    def abort(self) -> None:
        for s in self.staged:
            s.abort()


@dataclass
class Views:
    """Everything a quicklook shows, at preview size."""

    rgb: np.ndarray  # (h, w, 3) uint8, the input stretched (cumulative 2–98 % cut)
    cuts: list[tuple[float, float]]
    target: np.ndarray  # (h, w) bool: the predicted target class
    classes: np.ndarray  # (h, w) uint8 class indexes, 255 = nodata
    saliency: np.ndarray  # (bands, h, w) float32
    valid: np.ndarray  # (h, w) bool: saliency defined


def load_views(scene: SceneContext, saliency: Path, prediction: Path, side: int = SIDE) -> Views:
    from segxai_cli.raster.display import cumulative_cut, read_preview, to_rgb8

    inp = read_preview(scene.source, list(scene.bands or scene.opts.bands)[:3], side)
    cuts = cumulative_cut(inp.data, inp.valid)
    pred = read_preview(prediction, [1], side, resampling="nearest")
    sal = read_preview(saliency, None, side)
    classes = np.where(pred.valid, pred.data[0], 255).astype(np.uint8)
    return Views(to_rgb8(inp.data, inp.valid, cuts), cuts, classes == int(scene.opts.target_class), classes,
                 sal.data, sal.valid)


def method_image(v: Views, band: int) -> tuple[np.ndarray, float, float]:
    """The blended picture of one band and its display range (lo, hi)."""
    from segxai_cli.raster.display import blend_heat, display_range, outline, paint

    lo, hi = display_range(v.saliency[band], v.valid)
    img = blend_heat(v.rgb, np.nan_to_num(v.saliency[band]), v.valid, lo, hi)
    return paint(img, outline(v.target), OUTLINE_RGB), lo, hi


def prediction_image(v: Views) -> np.ndarray:
    from segxai_cli.raster.display import outline, paint
    from segxai_cli.raster.style import class_colormap

    img = v.rgb
    for cls, rgba in class_colormap(int(v.classes[v.classes != 255].max(initial=0)) + 1).items():
        if cls != 255 and rgba[3]:
            img = paint(img, v.classes == cls, rgba, 0.55)
    return paint(img, outline(v.target), OUTLINE_RGB)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _colorbar(fig, cax, lo: float, hi: float, label: str) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import ListedColormap, Normalize

    from segxai_cli.raster.display import heat_rgba

    cmap = ListedColormap(heat_rgba(np.linspace(0, 1, 256))[:, :3])
    cb = fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap), cax=cax, orientation="horizontal")
    cb.ax.tick_params(labelsize=7, length=2, pad=1)
    cb.set_label(label, fontsize=7, labelpad=1)


def _png(fig) -> bytes:
    """The figure as a 256-colour PNG (dithered: 4x smaller than full colour, looks the same), taken
    from the canvas's pixels (no intermediate full-colour PNG to encode)."""
    from PIL import Image

    fig.set_dpi(100)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    _plt().close(fig)
    img = Image.fromarray(np.ascontiguousarray(rgb)).quantize(256, method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def band_figure(v: Views, band: int, title: str) -> bytes:
    """One method: the blended image at its preview size, a title and a colour bar below."""
    plt = _plt()
    img, lo, hi = method_image(v, band)
    h, w = img.shape[:2]
    w_in, img_h, top, bottom = max(w, 320) / 100, h / 100, 0.3, 0.6
    fig = plt.figure(figsize=(w_in, img_h + top + bottom))
    H = img_h + top + bottom
    ax = fig.add_axes((0, bottom / H, 1, img_h / H))
    ax.imshow(img, interpolation="nearest")
    ax.set_axis_off()
    fig.text(0.5, 1 - 0.5 * top / H, title, ha="center", va="center", fontsize=8)
    _colorbar(fig, fig.add_axes((0.08, 0.4 / H, 0.84, 0.12 / H)), lo, hi, "saliency (display: 2–98 % of non-zero values)")
    return _png(fig)


def panel_figure(v: Views, names: list[str], title: str) -> bytes:
    """The input, the prediction and every method side by side (at most four per row)."""
    plt = _plt()
    tiles = 2 + len(names)
    nrows = math.ceil(tiles / PANEL_COLUMNS)
    ncols = math.ceil(tiles / nrows)
    aspect = v.rgb.shape[0] / v.rgb.shape[1]
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.8 * ncols, (2.8 * aspect + 0.75) * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    axes.flat[0].imshow(v.rgb, interpolation="nearest")
    axes.flat[0].set_title("input", fontsize=8)
    axes.flat[1].imshow(prediction_image(v), interpolation="nearest")
    axes.flat[1].set_title("prediction", fontsize=8)
    for i, (ax, name) in enumerate(zip(axes.flat[2:], names)):
        img, lo, hi = method_image(v, i)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        _colorbar(fig, ax.inset_axes((0.05, -0.09, 0.9, 0.05)), lo, hi, "")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(h_pad=1.6)
    return _png(fig)

"""Scene in, files out: the Python API behind ``segxai explain`` (notebooks call it directly).

::

    from segxai_cli.explain import explain_scene, explain_scenes

    r = explain_scene("sample_tiles/scene_01.tif", "out/")                 # bundled model, Seg-Grad-CAM
    r.saliency, r.prediction, r.stats.megapixels_per_s
    run = explain_scenes(["scenes/*.tif"], "out/", model="my.pt", methods=["gradcam", "hirescam"],
                         skip_existing=True, shard=(1, 4))

The data flow, one module each: ``options`` (resolved once) → ``run`` (inputs, model, scenes) →
``scene`` (one scene's life) → ``pipeline`` (read windows → tiles → CAM engine → stitch) →
``outputs`` (saliency / prediction COGs and styles) → ``records`` (scene record, manifest, CSV).

Outputs per input ``<stem>`` (see docs/explain.md): ``<stem>_saliency.tif`` (float32 COG, one band per
method, [0, 1] per scene, NaN = nodata) with ``.qml`` (and one per band); ``<stem>_prediction.tif`` (uint8 classes, 255 =
nodata) with ``.qml``; ``<stem>_quicklook*.png``; ``<stem>_saliency.json``, the record, written
**last**; and per run ``segxai_manifest.json``, ``segxai_scenes.csv`` and ``segxai.qgs``, rebuilt
from all records in the folder.
"""

from __future__ import annotations

from segxai_cli._lazy import lazy_exports

_EXPORTS = {
    "explain_scene": "segxai_cli.explain.run",
    "explain_scenes": "segxai_cli.explain.run",
    "ExplainOptions": "segxai_cli.explain.options",
    "resolve_options": "segxai_cli.explain.options",
    "SceneResult": "segxai_cli.explain.results",
    "RunResult": "segxai_cli.explain.results",
    "OutputPaths": "segxai_cli.explain.results",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

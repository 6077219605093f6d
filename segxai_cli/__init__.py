"""segxai: explain semantic-segmentation models on georeferenced imagery.

The public Python API (the CLI is a thin layer over it)::

    from segxai_cli import load_model, explain_batch, explain_scene, evaluate_scenes

    model, info = load_model()                      # the bundled sample model, or load_model("my.pt")
    maps = explain_batch(model, images, layer="decoder.blocks.3",
                         methods=["gradcam", "scorecam"], target_class=1)   # tensors in, tensors out
    explain_scene("scene.tif", "out/")              # GeoTIFF in, QGIS-ready GeoTIFFs out

Names are imported on first use, so ``segxai --help`` stays fast.
"""

from __future__ import annotations

from segxai_cli._lazy import lazy_exports
from segxai_cli._version import __version__

_EXPORTS = {
    "explain_batch": "segxai_cli.cam.engine",
    "METHODS": "segxai_cli.cam.registry",
    "load_model": "segxai_cli.model.checkpoint",
    "load_checkpoint": "segxai_cli.model.checkpoint",
    "save_checkpoint": "segxai_cli.model.checkpoint",
    "ModelInfo": "segxai_cli.model.info",
    "as_adapter": "segxai_cli.model.families",
    "resolve_layer": "segxai_cli.model.layers",
    "describe_layers": "segxai_cli.model.layers",
    "explain_scene": "segxai_cli.explain.run",
    "explain_scenes": "segxai_cli.explain.run",
    "evaluate_scenes": "segxai_cli.evaluation.run",
    "run_study": "segxai_cli.evaluation.run",
    "write_report": "segxai_cli.evaluation.report",
    "train_model": "segxai_cli.training.loop",
    "RasterSource": "segxai_cli.raster.source",
    "SegxaiError": "segxai_cli.errors",
}

__all__ = ["__version__", *_EXPORTS]

__getattr__ = lazy_exports(__name__, _EXPORTS)

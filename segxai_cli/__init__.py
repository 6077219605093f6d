"""segxai: explain semantic-segmentation models on georeferenced imagery.

The public Python API (the CLI is a thin layer over it)::

    from segxai_cli import load_model, explain_batch, explain_scene, evaluate_scenes

    model, info = load_model()                      # the bundled sample model, or load_model("my.pt")
    maps = explain_batch(model, images, layer="decoder.blocks.3",
                         methods=["gradcam", "scorecam"], target_class=1)   # tensors in, tensors out
    explain_scene("scene.tif", "out/")              # GeoTIFF in, QGIS-ready GeoTIFFs out

Imports are lazy so that ``segxai --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "explain_batch": "segxai_cli.cam",
    "METHODS": "segxai_cli.cam",
    "load_checkpoint": "segxai_cli.model.checkpoint",
    "save_checkpoint": "segxai_cli.model.checkpoint",
    "ModelInfo": "segxai_cli.model.checkpoint",
    "resolve_layer": "segxai_cli.model.layers",
    "describe_layers": "segxai_cli.model.layers",
    "explain_scene": "segxai_cli.explain",
    "explain_scenes": "segxai_cli.explain",
    "evaluate_scenes": "segxai_cli.evaluation",
    "train_model": "segxai_cli.training",
    "SegxaiError": "segxai_cli.errors",
}

__all__ = ["__version__", "load_model", *_EXPORTS]


def load_model(path: Any = None, **kwargs: Any):
    """Load a segxai checkpoint (default: the bundled sample model): returns ``(model, ModelInfo)``."""
    from segxai_cli.model.checkpoint import load_checkpoint

    return load_checkpoint(path, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'segxai_cli' has no attribute {name!r}")

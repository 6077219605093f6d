"""CAM engine: batched, one-pass Seg-CAMs for segmentation models (see ``engine.explain_batch``).

The method registry (``cam.registry``) imports no torch, so option checking stays instant; the
names below are loaded on first use.
"""

from __future__ import annotations

from segxai_cli._lazy import lazy_exports

_EXPORTS = {
    "EmptyRegionWarning": "segxai_cli.cam.engine",
    "explain_batch": "segxai_cli.cam.engine",
    "aggregate": "segxai_cli.cam.post",
    "minmax": "segxai_cli.cam.post",
    "postprocess": "segxai_cli.cam.post",
    "METHODS": "segxai_cli.cam.registry",
    "method_fn": "segxai_cli.cam.registry",
    "resolve_methods": "segxai_cli.cam.registry",
    "predict_region": "segxai_cli.cam.targets",
    "target_scores": "segxai_cli.cam.targets",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

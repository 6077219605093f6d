"""CAM engine: batched, one-pass Seg-CAMs for segmentation models (see ``engine.explain_batch``).

The method registry (``cam.registry``) imports no torch, so option checking stays instant; the
names below are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'segxai_cli.cam' has no attribute {name!r}")

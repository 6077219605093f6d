"""CAM engine: batched, one-pass Seg-CAMs for segmentation models (see engine.explain_batch)."""

from segxai_cli.cam.engine import (
    GRADIENT_METHODS,
    METHODS,
    EmptyRegionWarning,
    PERTURBATION_METHODS,
    explain_batch,
    predict_region,
    target_scores,
)
from segxai_cli.cam.gradient import GRADIENT_REGISTRY, register
from segxai_cli.cam.post import aggregate, minmax, postprocess

__all__ = [
    "EmptyRegionWarning",
    "GRADIENT_METHODS",
    "GRADIENT_REGISTRY",
    "METHODS",
    "PERTURBATION_METHODS",
    "aggregate",
    "explain_batch",
    "minmax",
    "postprocess",
    "predict_region",
    "register",
    "target_scores",
]

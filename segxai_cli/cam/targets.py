"""What a CAM explains: the target region of each image and its score.

``y = sum over the region of the class logit`` (or probability, ``use_probs``) — Vinogradova's
Seg-Grad-CAM and pytorch-grad-cam's ``SemanticSegmentationTarget``. The gradient methods but
Grad-CAM++ (whose alpha is not homogeneous in g) are invariant to using the region's mean instead
(it only rescales the map before min-max); Score-CAM
is not — its softmax over channel scores collapses to one channel on sums over thousands of
pixels — so it asks for the mean (docs/methods.md).
"""

from __future__ import annotations

import torch

from segxai_cli.model.outputs import class_score, predicted_class


def predict_region(logits: torch.Tensor, target_class: int) -> torch.Tensor:
    """Predicted mask of ``target_class`` (B, H, W) bool: argmax over L, or sigmoid > 0.5 for one channel."""
    return predicted_class(logits, target_class)


def target_scores(logits: torch.Tensor, region: torch.Tensor, target_class: int, use_probs: bool = False,
                  mean: bool = False) -> torch.Tensor:
    """y = sum (``mean``: mean) over the region of the class logit (or probability), one per image: (B,).

    The mean of an empty region is 0.
    """
    s = class_score(logits.float(), target_class, use_probs)
    r = region.to(s.dtype)
    total = (s * r).sum((1, 2))
    return total / r.sum((1, 2)).clamp(min=1) if mean else total

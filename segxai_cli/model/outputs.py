"""What a segmentation output means: logits → class probabilities, class scores, predicted masks.

Logits are (B, L, H, W). A model with one output channel (L = 1) is binary: ``p = sigmoid(z)``,
"class 1" is that channel and class 0 its complement (logit ``-z``). Every place that turns logits
into something (the CAM target score, the predicted class raster, the evaluation metrics) uses
these functions, so the binary case is handled once.
"""

from __future__ import annotations

import torch

from segxai_cli.errors import UsageError


def valid_classes(n_out: int) -> tuple[int, ...]:
    """Class indexes a model with ``n_out`` output channels can be asked about."""
    return (0, 1) if n_out == 1 else tuple(range(n_out))


def check_class(n_out: int, target_class: int) -> None:
    valid = valid_classes(n_out)
    if target_class not in valid:
        raise UsageError(
            f"target class {target_class} is not valid for a model with {n_out} output channel(s); "
            f"valid: {', '.join(map(str, valid))}"
        )


def class_probs(logits: torch.Tensor) -> torch.Tensor:
    """(B, L, H, W) logits → class probabilities; a 1-channel (sigmoid) model gives [1 - p, p]."""
    logits = logits.float()
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], 1)
    return torch.softmax(logits, 1)


def class_prob(logits: torch.Tensor, target_class: int) -> torch.Tensor:
    """p_c per pixel (B, H, W): softmax over L classes, or sigmoid for a binary one-channel model."""
    logits = logits.float()
    if logits.shape[1] == 1:
        p1 = torch.sigmoid(logits[:, 0])
        return p1 if target_class == 1 else 1.0 - p1
    return torch.softmax(logits, 1)[:, target_class]


def class_score(logits: torch.Tensor, target_class: int, use_probs: bool = False) -> torch.Tensor:
    """Per-pixel score of the target class (B, H, W): its logit (or probability)."""
    check_class(logits.shape[1], target_class)
    if use_probs:
        return class_prob(logits, target_class)
    if logits.shape[1] == 1:
        return logits[:, 0] if target_class == 1 else -logits[:, 0]  # logit of the complement is -z
    return logits[:, target_class]


def predicted_class(logits: torch.Tensor, target_class: int) -> torch.Tensor:
    """``argmax == c`` (B, H, W) bool; for a binary model ``sigmoid > 0.5`` (class 1) or its complement."""
    check_class(logits.shape[1], target_class)
    if logits.shape[1] == 1:
        fg = logits[:, 0] > 0
        return fg if target_class == 1 else ~fg
    return logits.argmax(1) == target_class

"""The training objective and its score: cross-entropy/Dice with ignored pixels, and foreground IoU."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from segxai_cli.training.sampler import IGNORE_INDEX


class SegLoss(nn.Module):
    """Cross-entropy (BCE for one channel), Dice, or their sum; pixels equal to 255 are ignored."""

    def __init__(self, classes: int, kind: str = "ce+dice") -> None:
        super().__init__()
        from segmentation_models_pytorch.losses import DiceLoss

        self.classes = classes
        self.use_ce = kind in ("ce", "ce+dice")
        self.use_dice = kind in ("dice", "ce+dice")
        mode = "binary" if classes == 1 else "multiclass"
        self.dice = DiceLoss(mode, from_logits=True, ignore_index=IGNORE_INDEX)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != IGNORE_INDEX
        total = logits.new_zeros(())
        if not bool(valid.any()):
            return total + 0.0 * logits.sum()  # keeps the graph; no labelled pixel in this batch
        if self.use_ce:
            if self.classes == 1:
                z = logits[:, 0][valid]
                total = total + nn.functional.binary_cross_entropy_with_logits(z, target[valid].float())
            else:
                total = total + nn.functional.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
        if self.use_dice:
            total = total + self.dice(logits, target)
        return total


class IoUMeter:
    """Accumulates foreground intersection and union over pixels (ignored pixels excluded)."""

    def __init__(self, classes: int) -> None:
        self.classes = classes
        n = 1 if classes <= 2 else classes - 1
        self.inter = np.zeros(n, np.float64)
        self.union = np.zeros(n, np.float64)

    @torch.no_grad()
    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != IGNORE_INDEX
        if self.classes == 1:
            pred = logits[:, 0] > 0
        else:
            pred = logits.argmax(1)
        fg = range(1, 2) if self.classes <= 2 else range(1, self.classes)
        for i, c in enumerate(fg):
            p = (pred == c) & valid if self.classes != 1 else pred & valid
            t = (target == c) & valid
            self.inter[i] += float((p & t).sum())
            self.union[i] += float((p | t).sum())

    def value(self) -> float:
        present = self.union > 0
        if not present.any():
            return float("nan")
        return float((self.inter[present] / self.union[present]).mean())

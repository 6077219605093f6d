"""The training recipe: every setting that is neither the data, the model nor the output file.

Checked as a whole before anything is read or written (:meth:`TrainConfig.validate`), recorded in
the checkpoint's provenance (:meth:`TrainConfig.settings`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional

from segxai_cli.errors import UsageError
from segxai_cli.model.info import default_class_names

LOSSES = ("ce", "dice", "ce+dice")
SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class TrainConfig:
    epochs: int = 20
    tile_size: int = 256
    crop_size: Optional[int] = None  # training windows; validation cells are tile-sized
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    samples_per_epoch: int = 512
    loss: str = "ce+dice"
    schedule: str = "onecycle"
    min_valid: float = 0.5
    augment: bool = True
    jitter: float = 0.1

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> tuple["TrainConfig", dict[str, Any]]:
        """Split keyword arguments into a recipe and the rest."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names}), {k: v for k, v in kwargs.items() if k not in names}

    @property
    def crop(self) -> int:
        return int(self.crop_size or self.tile_size)

    def validate(self) -> "TrainConfig":
        checks = [
            (self.epochs >= 1, f"--epochs {self.epochs}: must be at least 1"),
            (16 <= self.tile_size <= 8192, f"--tile-size {self.tile_size}: expected 16..8192 pixels"),
            (self.crop_size is None or 16 <= self.crop_size <= 8192, f"--crop-size {self.crop_size}: expected 16..8192 pixels"),
            (self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr {self.lr}: must be a positive number"),
            (0 <= self.val_fraction < 1, f"--val-fraction {self.val_fraction}: must be in [0, 1)"),
            (self.samples_per_epoch >= 1, f"--samples-per-epoch {self.samples_per_epoch}: must be at least 1"),
            (self.loss in LOSSES, f"--loss {self.loss}: expected one of {', '.join(LOSSES)}"),
            (self.schedule in SCHEDULES, f"--schedule {self.schedule}: expected one of {', '.join(SCHEDULES)}"),
            (0 <= self.jitter < 1, f"--jitter {self.jitter}: must be in [0, 1)"),
            (0 <= self.min_valid <= 1, f"--min-valid {self.min_valid}: must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)
        return self

    def settings(self) -> dict[str, Any]:
        d = asdict(self)
        d["crop_size"] = self.crop
        for k in ("epochs", "seed", "tile_size"):
            d.pop(k)
        return d


def resolve_class_names(classes: int, class_names: Sequence[str] | None) -> list[str]:
    """Names for the checkpoint. A binary model (1 channel) stores [background, foreground]."""
    if classes < 1:
        raise UsageError(f"--classes {classes}: must be at least 1 (1 = binary sigmoid model)")
    if classes > 255:
        raise UsageError(f"--classes {classes}: at most 255 (255 is the ignore value in masks)")
    if not class_names:
        return ["background", "building"] if classes in (1, 2) else default_class_names(classes)
    names = [str(n).strip() for n in class_names]
    if classes == 1 and len(names) == 1:
        return ["background", names[0]]
    expected = 2 if classes == 1 else classes
    if len(names) != expected:
        raise UsageError(f"--class-names: {len(names)} name(s) given for {expected} classes")
    return names


def make_scheduler(optimizer, schedule: str, lr: float, total_steps: int):
    """One-cycle, cosine with 5 % warm-up, or none (constant)."""
    import torch

    if schedule == "constant":
        return None
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=lr, total_steps=max(total_steps, 2), pct_start=0.15, anneal_strategy="cos"
        )
    warmup = max(1, int(0.05 * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

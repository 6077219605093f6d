"""The training loop: :func:`train_model` trains an smp model on random windows of scene/mask pairs.

Everything a user can get wrong (inputs, output path, options) is checked before the first step, so a
bad call fails fast with one :class:`~segxai_cli.errors.SegxaiError` and leaves no file behind. During
training the best checkpoint so far (by validation IoU; by training IoU when there is no validation
split) is written atomically under the final name, and one CSV row per epoch is appended to the log.

IoU is the intersection-over-union of the foreground class(es), summed over all pixels of the split:
for two classes (background/building) it is the building IoU; for more classes the mean over classes
1..C-1; for a one-channel (sigmoid) model the IoU of ``sigmoid > 0.5``. Ignored pixels do not count.
"""

from __future__ import annotations

import csv
import datetime as _dt
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segxai_cli import __version__
from segxai_cli.device import resolve_device
from segxai_cli.errors import OutputError, SegxaiError
from segxai_cli.files import check_output_file
from segxai_cli.model.checkpoint import (
    ModelInfo,
    build_model,
    default_class_names,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from segxai_cli.raster.reader import compute_band_stats
from segxai_cli.training.sampler import IGNORE_INDEX, WindowSampler, match_pairs, n_batches, validate_pairs

log = logging.getLogger("segxai.train")

LOG_COLUMNS = ("epoch", "loss", "train_iou", "val_iou", "lr", "seconds")
LOSSES = ("ce", "dice", "ce+dice")
SCHEDULES = ("onecycle", "cosine", "constant")


@dataclass
class TrainResult:
    """What :func:`train_model` returns: the checkpoint path, the per-epoch history and the best model."""

    path: Path
    log_path: Path
    history: list[dict[str, float]]
    best_epoch: int
    best_iou: float
    info: ModelInfo
    model: nn.Module = field(repr=False)


def default_log_path(output: str | Path) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_log.csv")


def resolve_class_names(classes: int, class_names: Sequence[str] | None) -> list[str]:
    """Names for the checkpoint. A binary model (1 channel) stores [background, foreground]."""
    if classes < 1:
        raise SegxaiError(f"--classes {classes}: must be at least 1 (1 = binary sigmoid model)")
    if classes > 255:
        raise SegxaiError(f"--classes {classes}: at most 255 (255 is the ignore value in masks)")
    if not class_names:
        return ["background", "building"] if classes in (1, 2) else default_class_names(classes)
    names = [str(n).strip() for n in class_names]
    if classes == 1 and len(names) == 1:
        return ["background", names[0]]
    expected = 2 if classes == 1 else classes
    if len(names) != expected:
        raise SegxaiError(f"--class-names: {len(names)} name(s) given for {expected} classes")
    return names


def train_model(
    images: str | Path | Sequence[str | Path],
    masks: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    arch: str = "Unet",
    encoder: str = "resnet18",
    classes: int = 2,
    class_names: Sequence[str] | None = None,
    model_kwargs: dict[str, Any] | None = None,
    epochs: int = 20,
    tile_size: int = 256,
    crop_size: int | None = None,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    val_fraction: float = 0.2,
    seed: int = 0,
    device: str | torch.device = "auto",
    bidx: Sequence[int] | None = None,
    samples_per_epoch: int = 512,
    loss: str = "ce+dice",
    schedule: str = "onecycle",
    min_valid: float = 0.5,
    augment: bool = True,
    jitter: float = 0.1,
    overwrite: bool = False,
    log_path: str | Path | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    extra_provenance: dict[str, Any] | None = None,
    init: str | Path | None = None,
) -> TrainResult:
    """Train a segmentation model on scene/mask pairs and write the best checkpoint to ``output``.

    IMAGES/MASKS follow :func:`segxai_cli.training.sampler.match_pairs`. Deterministic for a given
    ``seed`` on the CPU. Returns a :class:`TrainResult` whose ``model`` holds the best weights (the
    ones saved), in eval mode.

    ``init`` starts from the weights of a segxai checkpoint (fine-tuning); its architecture, encoder,
    model kwargs, classes, class names, bands and normalisation statistics are used, and the
    corresponding arguments are ignored.
    """
    # ---- options and output: checked before touching the data ---------------------------------------
    init_model = init_info = None
    if init is not None:
        init_model, init_info = load_checkpoint(init)
        arch, encoder, classes = init_info.arch, init_info.encoder, init_info.classes
        model_kwargs, class_names = dict(init_info.model_kwargs), list(init_info.class_names)
        if bidx and len(bidx) != init_info.in_channels:
            raise SegxaiError(f"--bidx: {len(bidx)} band(s) given but --init model {init} takes {init_info.in_channels}")
        bidx = list(bidx) if bidx else list(init_info.bands)
    _check_options(epochs, tile_size, batch_size, lr, val_fraction, samples_per_epoch, loss, schedule, min_valid, jitter)
    class_names = resolve_class_names(classes, class_names)
    output = check_output_file(output, overwrite=overwrite, what="model")
    log_path = check_output_file(log_path or default_log_path(output), overwrite=overwrite, what="log")
    if _same_file(output, log_path):
        raise OutputError(f"{log_path}: the log cannot be the model file")
    dev = resolve_device(device)
    model_kwargs = dict(model_kwargs or {})
    _check_tile_size(tile_size, model_kwargs)
    if crop_size is not None and crop_size != tile_size:
        _check_tile_size(crop_size, model_kwargs, option="--crop-size")

    # ---- inputs ------------------------------------------------------------------------------------
    pairs_paths = match_pairs(images, masks)
    for img, msk in pairs_paths:
        for p in (img, msk):
            if _same_file(p, output) or _same_file(p, log_path):
                raise OutputError(f"{output}: would overwrite the input {p}")
    pairs, bands = validate_pairs(pairs_paths, bidx=list(bidx) if bidx else None, classes=classes)
    info = ModelInfo(
        arch=arch,
        encoder=encoder,
        in_channels=len(bands),
        classes=classes,
        model_kwargs=model_kwargs,
        bands=bands,
        class_names=class_names,
        target_class=1,
        source_dtype=pairs[0].dtype,
        tile_size=tile_size,
    )
    torch.manual_seed(seed)
    model = build_model(info)  # validates arch/encoder/kwargs; never downloads weights
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
        del init_model
    if init_info is not None and init_info.band_stats is not None:
        stats = init_info.band_stats  # the weights expect the inputs normalised as before
    else:
        stats = compute_band_stats([p.image for p in pairs], bands)
    info.band_stats = stats
    sampler = WindowSampler(pairs, bands, stats, tile_size=tile_size, val_fraction=val_fraction, seed=seed, min_valid=min_valid,
        crop_size=crop_size, jitter=jitter if augment else 0.0,
    )
    log.info(
        "training %s/%s on %d scene(s), bands %s, %d validation cell(s), device %s",
        arch, encoder, len(pairs), bands, len(sampler.val_cells), dev,
    )

    model = model.to(dev)
    steps = n_batches(samples_per_epoch, batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = _make_scheduler(optimizer, schedule, lr, epochs * steps)
    criterion = SegLoss(classes, loss)
    provenance = {
        "data": [
            {"scene": p.image.name, "scene_sha256": file_sha256(p.image)[:12], "mask": p.mask.name, "mask_sha256": file_sha256(p.mask)[:12]}
            for p in pairs
        ],
        "epochs": epochs,
        "seed": seed,
        "settings": {
            "crop_size": crop_size or tile_size, "batch_size": batch_size, "samples_per_epoch": samples_per_epoch, "lr": lr, "weight_decay": weight_decay,
            "loss": loss, "schedule": schedule, "val_fraction": val_fraction, "val_cells": len(sampler.val_cells),
            "min_valid": min_valid, "augment": augment, "jitter": jitter,
        },
        "segxai_version": __version__,
        "torch_version": str(torch.__version__),
        "smp_version": _smp_version(),
        "device": dev.type,
        **(extra_provenance or {}),
    }
    if init_info is not None:
        provenance["init"] = {
            "file": Path(init_info.path).name, "sha256": (init_info.sha256 or "")[:12], "provenance": init_info.provenance,
        }

    history: list[dict[str, float]] = []
    best_iou, best_epoch, best_state = -math.inf, 0, None
    selected_by = "val_iou" if sampler.val_cells else "train_iou"
    try:
        with open(log_path, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(LOG_COLUMNS)
            fh.flush()
            for epoch in range(1, epochs + 1):
                t0 = time.perf_counter()
                rng = np.random.default_rng([int(seed), epoch])
                train_loss, train_iou, last_lr = _train_epoch(
                    model, sampler, rng, criterion, optimizer, scheduler, dev, classes, steps, batch_size, augment,
                    desc=f"epoch {epoch}/{epochs}", progress=progress,
                )
                val_iou = _evaluate(model, sampler, dev, classes, batch_size) if sampler.val_cells else float("nan")
                row = {
                    "epoch": epoch, "loss": train_loss, "train_iou": train_iou, "val_iou": val_iou,
                    "lr": last_lr, "seconds": time.perf_counter() - t0,
                }
                history.append(row)
                writer.writerow([epoch, f"{train_loss:.6f}", _fmt(train_iou), _fmt(val_iou), f"{last_lr:.6g}", f"{row['seconds']:.2f}"])
                fh.flush()
                score = row[selected_by]
                score = -1.0 if math.isnan(score) else score
                if best_state is None or score > best_iou:
                    best_iou, best_epoch = score, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    info.provenance = {
                        **provenance, "epochs_completed": epoch, "best_epoch": epoch, "selected_by": selected_by,
                        "val_iou": None if math.isnan(val_iou) else round(val_iou, 6), "train_iou": round(train_iou, 6),
                        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
                    }
                    save_checkpoint(output, model, info)
                else:
                    info.provenance["epochs_completed"] = epoch
                if on_epoch is not None:
                    on_epoch(dict(row, best_epoch=best_epoch))
    except BaseException:
        if best_state is None:  # nothing saved: leave no log of a run that produced no model
            log_path.unlink(missing_ok=True)
        raise
    finally:
        sampler.close()

    if best_state is not None and best_epoch != epochs:
        # Record how many epochs actually ran; the weights stay those of the best epoch.
        model.load_state_dict(best_state)
        save_checkpoint(output, model, info)
    model.eval()
    return TrainResult(output, log_path, history, best_epoch, best_iou, info, model)


# --------------------------------------------------------------------------------------------------


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


def _train_epoch(model, sampler, rng, criterion, optimizer, scheduler, dev, classes, steps, batch_size, augment, *, desc, progress):
    from tqdm import tqdm

    model.train()
    meter = IoUMeter(classes)
    total, count = 0.0, 0
    last_lr = optimizer.param_groups[0]["lr"]
    bar = tqdm(range(steps), desc=desc, unit="batch", file=sys.stderr, disable=not progress, leave=False, dynamic_ncols=True)
    for _ in bar:
        samples = [sampler.train_sample(rng, augment=augment) for _ in range(batch_size)]
        x = torch.from_numpy(np.stack([s[0] for s in samples])).to(dev)
        y = torch.from_numpy(np.stack([s[1] for s in samples])).to(dev)
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = criterion(logits, y)
        if not torch.isfinite(loss):
            raise SegxaiError(f"training diverged (loss {loss.item()}); try a lower --lr")
        loss.backward()
        optimizer.step()
        last_lr = optimizer.param_groups[0]["lr"]
        if scheduler is not None:
            scheduler.step()
        total += float(loss.detach()) * len(samples)
        count += len(samples)
        meter.update(logits.detach(), y)
        bar.set_postfix(loss=f"{total / count:.4f}")
    bar.close()
    return total / max(count, 1), meter.value(), last_lr


@torch.no_grad()
def _evaluate(model, sampler, dev, classes, batch_size) -> float:
    model.eval()
    meter = IoUMeter(classes)
    batch: list = []

    def flush() -> None:
        x = torch.from_numpy(np.stack([s[0] for s in batch])).to(dev)
        y = torch.from_numpy(np.stack([s[1] for s in batch])).to(dev)
        meter.update(model(x), y)
        batch.clear()

    for sample in sampler.val_samples():
        batch.append(sample)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    model.train()
    return meter.value()


def _make_scheduler(optimizer, schedule: str, lr: float, total_steps: int):
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


def _check_options(epochs, tile_size, batch_size, lr, val_fraction, samples_per_epoch, loss, schedule, min_valid, jitter) -> None:
    if epochs < 1:
        raise SegxaiError(f"--epochs {epochs}: must be at least 1")
    if tile_size < 16:
        raise SegxaiError(f"--tile-size {tile_size}: must be at least 16")
    if batch_size < 1:
        raise SegxaiError(f"--batch-size {batch_size}: must be at least 1")
    if not (lr > 0 and math.isfinite(lr)):
        raise SegxaiError(f"--lr {lr}: must be a positive number")
    if not 0 <= val_fraction < 1:
        raise SegxaiError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    if samples_per_epoch < 1:
        raise SegxaiError(f"--samples-per-epoch {samples_per_epoch}: must be at least 1")
    if loss not in LOSSES:
        raise SegxaiError(f"--loss {loss}: expected one of {', '.join(LOSSES)}")
    if schedule not in SCHEDULES:
        raise SegxaiError(f"--schedule {schedule}: expected one of {', '.join(SCHEDULES)}")
    if not 0 <= jitter < 1:
        raise SegxaiError(f"--jitter {jitter}: must be in [0, 1)")
    if not 0 <= min_valid <= 1:
        raise SegxaiError(f"--min-valid {min_valid}: must be in [0, 1]")


def _check_tile_size(tile_size: int, model_kwargs: dict[str, Any], option: str = "--tile-size") -> None:
    depth = int(model_kwargs.get("encoder_depth", 5))
    stride = 2**depth
    if tile_size < 16:
        raise SegxaiError(f"{option} {tile_size}: must be at least 16")
    if tile_size % stride:
        raise SegxaiError(
            f"{option} {tile_size}: must be a multiple of {stride} for an encoder of depth {depth}"
        )


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6f}"


def _smp_version() -> str:
    try:
        import segmentation_models_pytorch as smp

        return str(smp.__version__)
    except Exception:  # pragma: no cover - version lookup only
        return "unknown"

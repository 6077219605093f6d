"""Training: :func:`train_model` trains a model on random windows of scene/mask pairs.

Everything a user can get wrong (recipe, output path, model, inputs) is checked before the first
step, so a bad call fails fast with one :class:`~segxai_cli.errors.SegxaiError` and leaves no file
behind. During training the best checkpoint so far (by validation IoU; by training IoU when there is
no validation split) is written atomically under the final name, and one CSV row per epoch is
appended to the log.

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

from segxai_cli._version import __version__
from segxai_cli.device import resolve_device
from segxai_cli.errors import OutputError, SegxaiError, UsageError
from segxai_cli.files import check_output_file
from segxai_cli.model.checkpoint import check_tile_size, file_sha256, load_checkpoint, save_checkpoint
from segxai_cli.model.families import build_model
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.stats import compute_band_stats
from segxai_cli.training.losses import IoUMeter, SegLoss
from segxai_cli.training.recipe import TrainConfig, make_scheduler, resolve_class_names
from segxai_cli.training.sampler import WindowSampler, match_pairs, n_batches, validate_pairs

log = logging.getLogger("segxai.train")

LOG_COLUMNS = ("epoch", "loss", "train_iou", "val_iou", "lr", "seconds")


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
    init: str | Path | None = None,
    bidx: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    config: TrainConfig | None = None,
    overwrite: bool = False,
    log_path: str | Path | None = None,
    progress: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    extra_provenance: dict[str, Any] | None = None,
    **recipe: Any,
) -> TrainResult:
    """Train a segmentation model on scene/mask pairs and write the best checkpoint to ``output``.

    IMAGES/MASKS follow :func:`segxai_cli.training.sampler.match_pairs`. The recipe is ``config`` or
    its fields as keywords (``epochs``, ``tile_size``, ``crop_size``, ``batch_size``, ``lr``,
    ``val_fraction``, ``seed``, ``loss``, ``schedule``, … see :class:`TrainConfig`). Deterministic for
    a seed on the CPU. ``init`` starts from a segxai checkpoint's weights (fine-tuning): its
    architecture, classes, bands and normalisation are used and the corresponding arguments ignored.
    Returns a :class:`TrainResult` whose ``model`` holds the best (saved) weights, in eval mode.
    """
    cfg, unknown = TrainConfig.from_kwargs(recipe)
    if unknown:
        raise TypeError(f"unexpected arguments: {', '.join(unknown)}")
    cfg = (config or cfg).validate()
    init_model, init_info = load_checkpoint(init) if init is not None else (None, None)
    if init_info is not None:
        arch, encoder, classes = init_info.arch, init_info.encoder, init_info.classes
        model_kwargs, class_names = dict(init_info.model_kwargs), list(init_info.class_names)
        if bidx and len(bidx) != init_info.in_channels:
            raise UsageError(f"-b/--bidx: {len(bidx)} band(s) given but --init model {init} takes {init_info.in_channels}")
        bidx = list(bidx) if bidx else list(init_info.bands)
    class_names = resolve_class_names(classes, class_names)
    output, log_path = _check_outputs(output, log_path, overwrite)
    dev = resolve_device(device)

    pairs, bands = _pairs(images, masks, bidx, classes, output, log_path)
    info = ModelInfo(arch=arch, encoder=encoder, in_channels=len(bands), classes=classes,
                     model_kwargs=dict(model_kwargs or {}), bands=bands, class_names=class_names, target_class=1,
                     source_dtype=pairs[0].dtype, tile_size=cfg.tile_size)
    model = _model(info, cfg, init_model)
    # the weights of an init model expect the inputs normalised as before
    info.band_stats = init_info.band_stats if init_info and init_info.band_stats else \
        compute_band_stats([p.image for p in pairs], bands)
    sampler = WindowSampler(pairs, bands, info.band_stats, tile_size=cfg.tile_size, val_fraction=cfg.val_fraction,
                            seed=cfg.seed, min_valid=cfg.min_valid, crop_size=cfg.crop_size,
                            jitter=cfg.jitter if cfg.augment else 0.0)
    log.info("training %s on %d scene(s), bands %s, %d validation cell(s), device %s",
             info.label, len(pairs), bands, len(sampler.val_cells), dev)
    provenance = _provenance(cfg, pairs, sampler, dev, init_info, extra_provenance)
    trainer = _Trainer(model.to(dev), info, cfg, sampler, dev, output, log_path, provenance, progress, on_epoch)
    try:
        return trainer.run()
    finally:
        sampler.close()


def _pairs(images, masks, bidx, classes: int, output: Path, log_path: Path):
    """Scene/mask pairs, validated (grids, bands, mask values), none of them an output file."""
    pairs_paths = match_pairs(images, masks)
    for img, msk in pairs_paths:
        for p in (img, msk):
            if p.is_local and (_same_file(p.path, output) or _same_file(p.path, log_path)):
                raise OutputError(f"{output}: would overwrite the input {p}")
    return validate_pairs(pairs_paths, bidx=list(bidx) if bidx else None, classes=classes)


def _model(info: ModelInfo, cfg: TrainConfig, init_model) -> nn.Module:
    """The seeded, untrained model (or the --init weights); tile and crop sizes checked against its stride."""
    torch.manual_seed(cfg.seed)
    model = build_model(info)  # validates arch/encoder/kwargs; never downloads weights
    check_tile_size(cfg.tile_size, model, "--tile-size")
    if cfg.crop_size is not None and cfg.crop_size != cfg.tile_size:
        check_tile_size(cfg.crop_size, model, "--crop-size")
    if init_model is not None:
        model.load_state_dict(init_model.state_dict())
    return model


def _check_outputs(output, log_path, overwrite: bool) -> tuple[Path, Path]:
    output = check_output_file(output, overwrite=overwrite, what="model")
    log_path = check_output_file(log_path or default_log_path(output), overwrite=overwrite, what="log")
    if _same_file(output, log_path):
        raise OutputError(f"{log_path}: the log cannot be the model file")
    return output, log_path


def _provenance(cfg: TrainConfig, pairs, sampler, dev, init_info, extra) -> dict[str, Any]:
    """Where the weights came from: data (names and checksums, never a machine's paths), recipe, versions."""
    prov = {
        "data": [
            {"scene": p.image.name, "scene_sha256": _sha12(p.image), "mask": p.mask.name, "mask_sha256": _sha12(p.mask)}
            for p in pairs
        ],
        "epochs": cfg.epochs,
        "seed": cfg.seed,
        "settings": {**cfg.settings(), "val_cells": len(sampler.val_cells)},
        "segxai_version": __version__,
        "torch_version": str(torch.__version__),
        "smp_version": _smp_version(),
        "device": dev.type,
        **(extra or {}),
    }
    if init_info is not None:
        prov["init"] = {"file": Path(init_info.path).name, "sha256": (init_info.sha256 or "")[:12],
                        "provenance": init_info.provenance}
    return prov


def _sha12(source) -> str:
    return file_sha256(source.path)[:12] if source.is_local else ""


class _Trainer:
    """The epoch loop: train, validate, keep the best checkpoint, log a row per epoch."""

    def __init__(self, model, info, cfg: TrainConfig, sampler, dev, output, log_path, provenance, progress, on_epoch):
        self.model, self.info, self.cfg, self.sampler, self.dev = model, info, cfg, sampler, dev
        self.output, self.log_path, self.provenance = output, log_path, provenance
        self.progress, self.on_epoch = progress, on_epoch
        self.steps = n_batches(cfg.samples_per_epoch, cfg.batch_size)
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg.schedule, cfg.lr, cfg.epochs * self.steps)
        self.criterion = SegLoss(info.classes, cfg.loss)
        self.selected_by = "val_iou" if sampler.val_cells else "train_iou"
        self.history: list[dict[str, float]] = []
        self.best_iou, self.best_epoch, self.best_state = -math.inf, 0, None

    def run(self) -> TrainResult:
        try:
            with open(self.log_path, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(LOG_COLUMNS)
                fh.flush()
                for epoch in range(1, self.cfg.epochs + 1):
                    row = self.epoch(epoch)
                    writer.writerow([epoch, f"{row['loss']:.6f}", _fmt(row["train_iou"]), _fmt(row["val_iou"]),
                                     f"{row['lr']:.6g}", f"{row['seconds']:.2f}"])
                    fh.flush()
                    self.keep_best(epoch, row)
                    if self.on_epoch is not None:
                        self.on_epoch(dict(row, best_epoch=self.best_epoch))
        except BaseException:
            if self.best_state is None:  # nothing saved: leave no log of a run that produced no model
                self.log_path.unlink(missing_ok=True)
            raise
        if self.best_state is not None and self.best_epoch != self.cfg.epochs:
            # Record how many epochs actually ran; the weights stay those of the best epoch.
            self.model.load_state_dict(self.best_state)
            save_checkpoint(self.output, self.model, self.info)
        self.model.eval()
        return TrainResult(self.output, self.log_path, self.history, self.best_epoch, self.best_iou, self.info, self.model)

    def epoch(self, epoch: int) -> dict[str, float]:
        t0 = time.perf_counter()
        rng = np.random.default_rng([int(self.cfg.seed), epoch])
        loss, train_iou, lr = self.train_epoch(rng, desc=f"epoch {epoch}/{self.cfg.epochs}")
        val_iou = self.validate() if self.sampler.val_cells else float("nan")
        row = {"epoch": epoch, "loss": loss, "train_iou": train_iou, "val_iou": val_iou, "lr": lr,
               "seconds": time.perf_counter() - t0}
        self.history.append(row)
        return row

    def keep_best(self, epoch: int, row: dict[str, float]) -> None:
        score = row[self.selected_by]
        score = -1.0 if math.isnan(score) else score
        if self.best_state is None or score > self.best_iou:
            self.best_iou, self.best_epoch = score, epoch
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            val = row["val_iou"]
            self.info.provenance = {
                **self.provenance, "epochs_completed": epoch, "best_epoch": epoch, "selected_by": self.selected_by,
                "val_iou": None if math.isnan(val) else round(val, 6), "train_iou": round(row["train_iou"], 6),
                "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            }
            save_checkpoint(self.output, self.model, self.info)
        else:
            self.info.provenance["epochs_completed"] = epoch

    def train_epoch(self, rng, *, desc: str) -> tuple[float, float, float]:
        from tqdm import tqdm

        cfg, model = self.cfg, self.model
        model.train()
        meter = IoUMeter(self.info.classes)
        total, count = 0.0, 0
        last_lr = self.optimizer.param_groups[0]["lr"]
        bar = tqdm(range(self.steps), desc=desc, unit="batch", file=sys.stderr, disable=not self.progress,
                   leave=False, dynamic_ncols=True)
        for _ in bar:
            samples = [self.sampler.train_sample(rng, augment=cfg.augment) for _ in range(cfg.batch_size)]
            x = torch.from_numpy(np.stack([s[0] for s in samples])).to(self.dev)
            y = torch.from_numpy(np.stack([s[1] for s in samples])).to(self.dev)
            self.optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = self.criterion(logits, y)
            if not torch.isfinite(loss):
                raise SegxaiError(f"training diverged (loss {loss.item()}); try a lower --lr")
            loss.backward()
            self.optimizer.step()
            last_lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None:
                self.scheduler.step()
            total += float(loss.detach()) * len(samples)
            count += len(samples)
            meter.update(logits.detach(), y)
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        return total / max(count, 1), meter.value(), last_lr

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        meter = IoUMeter(self.info.classes)
        batch: list = []

        def flush() -> None:
            x = torch.from_numpy(np.stack([s[0] for s in batch])).to(self.dev)
            y = torch.from_numpy(np.stack([s[1] for s in batch])).to(self.dev)
            meter.update(self.model(x), y)
            batch.clear()

        for sample in self.sampler.val_samples():
            batch.append(sample)
            if len(batch) == self.cfg.batch_size:
                flush()
        if batch:
            flush()
        self.model.train()
        return meter.value()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _fmt(v: float) -> str:
    return "" if math.isnan(v) else f"{v:.6f}"


def _smp_version() -> str:
    try:
        from importlib.metadata import version

        return version("segmentation-models-pytorch")
    except Exception:  # pragma: no cover - version lookup only
        return "unknown"

"""The segxai checkpoint: one file with the weights and everything needed to use them without flags.

Format (a plain dict, so it loads with ``torch.load(weights_only=True)`` — no pickled code)::

    {"format": "segxai-checkpoint", "format_version": 1,
     "state_dict": {...tensors...},
     "meta": {"arch": "Unet", "encoder": "mobilenet_v2", "model_kwargs": {...},
              "in_channels": 3, "bands": [1, 2, 3], "classes": 2,
              "class_names": ["background", "building"], "target_class": 1,
              "band_stats": {"mean": [...], "std": [...]}, "source_dtype": "uint8",
              "tile_size": 256, "provenance": {...}, "segxai_version": "0.1.0"}}

A plain segmentation-models-pytorch ``state_dict`` also loads when the caller names the
architecture, encoder and number of classes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from segxai_cli import __version__
from segxai_cli.errors import InputError
from segxai_cli.files import atomic_path
from segxai_cli.raster.reader import BandStats

FORMAT = "segxai-checkpoint"
FORMAT_VERSION = 1
BUNDLED_MODEL_NAME = "segxai_buildings.pt"


@dataclass
class ModelInfo:
    """Everything about a model except its weights."""

    arch: str = "Unet"
    encoder: str = "resnet34"
    in_channels: int = 3
    classes: int = 2
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    bands: list[int] | None = None
    class_names: list[str] | None = None
    target_class: int = 1
    band_stats: BandStats | None = None
    source_dtype: str | None = None
    tile_size: int = 256
    provenance: dict[str, Any] = field(default_factory=dict)
    segxai_version: str = __version__
    path: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if self.bands is None:
            self.bands = list(range(1, self.in_channels + 1))
        if self.class_names is None:
            self.class_names = default_class_names(self.classes)

    def to_meta(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "encoder": self.encoder,
            "model_kwargs": dict(self.model_kwargs),
            "in_channels": int(self.in_channels),
            "bands": [int(b) for b in self.bands],
            "classes": int(self.classes),
            "class_names": list(self.class_names),
            "target_class": int(self.target_class),
            "band_stats": self.band_stats.to_dict() if self.band_stats else None,
            "source_dtype": self.source_dtype,
            "tile_size": int(self.tile_size),
            "provenance": self.provenance,
            "segxai_version": self.segxai_version,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> "ModelInfo":
        stats = meta.get("band_stats")
        return cls(
            arch=meta["arch"],
            encoder=meta["encoder"],
            in_channels=int(meta["in_channels"]),
            classes=int(meta["classes"]),
            model_kwargs=dict(meta.get("model_kwargs") or {}),
            bands=list(meta.get("bands") or []) or None,
            class_names=list(meta.get("class_names") or []) or None,
            target_class=int(meta.get("target_class", 1)),
            band_stats=BandStats.from_dict(stats) if stats else None,
            source_dtype=meta.get("source_dtype"),
            tile_size=int(meta.get("tile_size", 256)),
            provenance=dict(meta.get("provenance") or {}),
            segxai_version=str(meta.get("segxai_version", "unknown")),
        )


def require_band_stats(info: ModelInfo) -> BandStats:
    """The normalisation statistics, or a clear error: reading scenes without them would be wrong."""
    if info.band_stats is None:
        raise InputError(
            f"{info.path or 'the model'}: has no band statistics; wrap it with "
            "`segxai import ... --stats-from SCENE` (or --band-mean/--band-std)"
        )
    return info.band_stats


def default_class_names(classes: int) -> list[str]:
    if classes == 1:
        return ["background", "class_1"]  # binary: channel 0 is "class 1"
    return [f"class_{i}" for i in range(classes)]


def build_model(info: ModelInfo) -> nn.Module:
    """An untrained smp model of the described architecture (never downloads weights)."""
    import segmentation_models_pytorch as smp

    try:
        return smp.create_model(
            info.arch,
            encoder_name=info.encoder,
            encoder_weights=None,
            in_channels=info.in_channels,
            classes=info.classes,
            **info.model_kwargs,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InputError(f"cannot build model {info.arch}/{info.encoder}: {_first_line(exc)}") from None


def save_checkpoint(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    """Write the checkpoint atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "state_dict": state, "meta": info.to_meta()}
    atomic_torch_save(payload, path)
    return path


def atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_path(path, "pt") as tmp:
        torch.save(obj, tmp)


def load_checkpoint(
    path: str | Path | None = None,
    *,
    arch: str | None = None,
    encoder: str | None = None,
    classes: int | None = None,
    in_channels: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> tuple[nn.Module, ModelInfo]:
    """Load a segxai checkpoint (or a plain smp state_dict plus the naming options) in eval mode.

    ``path=None`` loads the bundled sample model. Untrusted pickles are refused:
    ``torch.load(weights_only=True)`` never executes code from the file.
    """
    path = Path(path) if path is not None else bundled_model_path()
    obj = _safe_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        if int(obj.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(f"{path}: checkpoint format version {obj['format_version']} is newer than this segxai")
        info = ModelInfo.from_meta(obj["meta"])
        state = obj["state_dict"]
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        missing = [n for n, v in (("--arch", arch), ("--encoder", encoder), ("--classes", classes)) if v is None]
        if missing:
            raise InputError(
                f"{path}: is a plain state_dict without segxai metadata; name the model with {', '.join(missing)}"
            )
        state = obj
        info = ModelInfo(
            arch=arch, encoder=encoder, classes=int(classes),
            in_channels=int(in_channels or _guess_in_channels(state) or 3), model_kwargs=dict(model_kwargs or {}),
        )
    else:
        raise InputError(f"{path}: not a segxai checkpoint or model state_dict")
    model = build_model(info)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit {info.arch}/{info.encoder}: {_first_line(exc)}") from None
    info.path = str(path)
    info.sha256 = file_sha256(path)
    model.eval()
    return model.to(device), info


def _safe_load(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise InputError(
            f"{path}: refused: the checkpoint contains pickled objects that could run code "
            f"(weights_only load failed: {_first_line(exc)[:120]})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)[:160]})") from None


def _guess_in_channels(state: dict[str, torch.Tensor]) -> int | None:
    for name, t in state.items():
        if name.startswith("encoder.") and t.ndim == 4:
            return int(t.shape[1])
    return None


def bundled_model_path() -> Path:
    """The sample model: $SEGXAI_MODEL, else the copy inside the installed package, else the repo's."""
    env = os.environ.get("SEGXAI_MODEL")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for candidate in (here.parents[1] / "data" / BUNDLED_MODEL_NAME, here.parents[2] / "sample_tiles" / BUNDLED_MODEL_NAME):
        if candidate.is_file():
            return candidate
    raise InputError(f"bundled model {BUNDLED_MODEL_NAME} not found; pass a model with -m/--model")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

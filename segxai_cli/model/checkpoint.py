"""The segxai checkpoint: one file with the weights and everything needed to use them without flags.

Format (a plain dict, so it loads with ``torch.load(weights_only=True)`` — no pickled code)::

    {"format": "segxai-checkpoint", "format_version": 1,
     "state_dict": {...tensors...},       # or "model_bytes": uint8 tensor (TorchScript, ONNX files)
     "meta": {"family": "smp", "arch": "Unet", "encoder": "mobilenet_v2", "model_kwargs": {...},
              "in_channels": 3, "bands": [1, 2, 3], "classes": 2,
              "class_names": ["background", "building"], "target_class": 1,
              "band_stats": {"mean": [...], "std": [...]}, "source_dtype": "uint8",
              "tile_size": 256, "provenance": {...}, "segxai_version": "0.2.0"}}

Every meta field is validated on load (:mod:`segxai_cli.model.info`), and the tile size against the
model's real stride. What the payload holds is the family's business
(:meth:`~segxai_cli.model.adapter.ModelAdapter.payload` / ``restore``). A plain smp ``state_dict``
(also wrapped: ``{"state_dict": …}``, ``module.`` prefixes…) loads when the caller names the
architecture, encoder and number of classes; ``segxai import`` records them once
(:mod:`segxai_cli.model.importing` reads every other kind of file).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.files import atomic_path
from segxai_cli.model.adapter import remember_tile
from segxai_cli.model.families import as_adapter, build_model, family
from segxai_cli.model.info import ModelInfo
from segxai_cli.model.weights import load_weights, unwrap
from segxai_cli.raster.stats import BandStats

FORMAT = "segxai-checkpoint"
FORMAT_VERSION = 1
BUNDLED_MODEL_NAME = "segxai_buildings.pt"

ModelSpec = Union[None, str, os.PathLike, tuple]


def require_band_stats(info: ModelInfo) -> BandStats:
    """The normalisation statistics, or a clear error: reading scenes without them would be wrong."""
    if info.band_stats is None:
        raise InputError(
            f"{info.path or 'the model'}: has no band statistics; wrap it with "
            "`segxai import ... --stats-from SCENE` (or --band-mean/--band-std)"
        )
    return info.band_stats


def save_checkpoint(path: str | Path, model: nn.Module, info: ModelInfo) -> Path:
    """Write the checkpoint atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, **family(info.family).payload(model),
               "meta": info.to_meta()}
    with atomic_path(path, "pt") as tmp:
        torch.save(payload, tmp)
    return path


def load_model(model: ModelSpec = None, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """None (the bundled model), a checkpoint path, or a ``(module, ModelInfo)`` pair → (module, info)
    in eval mode on ``device``."""
    if isinstance(model, tuple) and len(model) == 2:
        module, info = model
        remember_tile(module, info.tile_size)
        return module.to(device).eval(), info
    return load_checkpoint(model, device=device)


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
    _refuse_bare_file(path)
    obj = _safe_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        version = obj.get("format_version", 0)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise InputError(f"{path}: checkpoint format version {version!r} is newer than this segxai")
        info = ModelInfo.from_meta(obj.get("meta"), str(path))
        try:
            model = family(info.family).restore(info, obj)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    else:
        state, _ = unwrap(obj)
        if state is None:
            raise InputError(f"{path}: not a segxai checkpoint or model state_dict")
        if arch is None or encoder is None or classes is None:
            raise InputError(
                f"{path}: is a plain state_dict without segxai metadata; wrap it once with "
                "`segxai import STATE_DICT -o MODEL.pt --arch ... --encoder ... --classes ... --stats-from SCENE`"
            )
        info = ModelInfo(
            arch=arch, encoder=encoder, classes=int(classes),
            in_channels=int(in_channels or _guess_in_channels(state) or 3), model_kwargs=dict(model_kwargs or {}),
        )
        model = build_model(info)
        try:
            load_weights(model, state, info.label)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from None
    remember_tile(model, info.tile_size)
    check_tile_size(info.tile_size, model, f"{path}: checkpoint tile_size")
    info.path = str(path)
    info.sha256 = file_sha256(path)
    model.eval()
    return model.to(device), info


def _refuse_bare_file(path: Path) -> None:
    """Model files without segxai metadata (ONNX, TorchScript, save_pretrained folders) need an import."""
    from segxai_cli.model.torchscript import is_torchscript

    kind = ("a Hugging Face folder" if path.is_dir() else "an ONNX model" if path.suffix.lower() == ".onnx"
            else "a TorchScript model" if path.is_file() and is_torchscript(path) else None)
    if kind:
        raise InputError(f"{path}: is {kind} without segxai metadata; wrap it once with "
                         "`segxai import MODEL_FILE -o MODEL.pt --stats-from SCENE` (see `segxai import --help`)")


def check_tile_size(tile: int, model: nn.Module, what: str = "--tile-size") -> None:
    """A tile must fit the model: a multiple of its stride (2^encoder depth for smp encoders), not
    below its smallest input, the exported size of a fixed-size ONNX model."""
    from segxai_cli.errors import UsageError

    problem = as_adapter(model).tile_problem(int(tile))
    if problem:
        err = InputError if what.endswith("checkpoint tile_size") else UsageError
        raise err(f"{what} {tile}: {problem}")


def _safe_load(path: Path) -> Any:
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint file")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise InputError(f"{path}: not a checkpoint (not a PyTorch file)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" in str(exc):
            raise InputError(
                f"{path}: refused: the checkpoint contains pickled objects that could run code; "
                "only plain tensors and containers are loaded"
            ) from None
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({_first_line(exc)[:160]})") from None
    except Exception as exc:  # a truncated or corrupt file: torch raises many kinds
        raise InputError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)[:160]})") from None


def _guess_in_channels(state: dict[str, torch.Tensor]) -> int | None:
    convs = [(name, t) for name, t in state.items() if t.ndim == 4]
    for name, t in convs:
        if "encoder." in name:
            return int(t.shape[1])
    return int(convs[0][1].shape[1]) if convs else None


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

"""Reading the model files people have, for ``segxai import``: what kind of file, which family,
which architecture, and the module with its weights.

- a segxai checkpoint (re-imported, e.g. to change its statistics);
- a ``save_pretrained`` folder of a Hugging Face SegFormer / UperNet;
- an ``.onnx`` file (onnxruntime) or a TorchScript archive: bare files, no architecture needed;
- a TorchGeo / Lightning checkpoint whose ``hyper_parameters`` name the model (no flags needed);
- a state_dict, plain or wrapped (``{"state_dict": …}``, ``{"model_state_dict": …}``, DataParallel's
  ``module.``, Lightning's ``model.``), with ``--arch/--encoder/--classes`` naming the architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from segxai_cli.errors import InputError, UsageError
from segxai_cli.model.families import build_model
from segxai_cli.model.info import ModelInfo
from segxai_cli.model.weights import load_weights, unwrap


@dataclass
class Naming:
    """What the user said about the model (``segxai import`` options); None = not given."""

    family: Optional[str] = None
    arch: Optional[str] = None
    encoder: Optional[str] = None
    classes: Optional[int] = None
    in_channels: Optional[int] = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)


def import_model(path: Path, naming: Naming, tile_size: int) -> tuple[nn.Module, ModelInfo, str]:
    """(module in eval mode, its ModelInfo without statistics, what the file was) for any model file."""
    from segxai_cli.model.checkpoint import FORMAT, _safe_load, load_checkpoint
    from segxai_cli.model.torchscript import is_torchscript

    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        return _hf_folder(path)
    if path.suffix.lower() == ".onnx":
        from segxai_cli.model.onnx import OnnxModule

        return (*_bare(OnnxModule(path.read_bytes()), "onnx", "ONNX", naming, tile_size), "ONNX model")
    if is_torchscript(path):
        from segxai_cli.model.torchscript import load_bytes

        net = load_bytes(path.read_bytes(), str(path))
        return (*_bare(net, "torchscript", "TorchScript", naming, tile_size), "TorchScript model")
    obj = _safe_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        net, info = load_checkpoint(path)
        return net, info, "segxai checkpoint"
    state, where = unwrap(obj)
    if state is None:
        raise InputError(f"{path}: no state_dict found (looked for a dict of tensors, or one under "
                         "'state_dict', 'model_state_dict', 'model', …)")
    hp = obj.get("hyper_parameters") if isinstance(obj, dict) else None
    fields = _fields_from(hp, naming, state, path)
    info = ModelInfo(**fields)
    model = build_model(info)
    try:
        load_weights(model, state, info.label)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    kind = f"{'TorchGeo/Lightning checkpoint' if hp else 'state_dict'} ({where})"
    return model.eval(), info, kind


def _fields_from(hp: Any, naming: Naming, state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """ModelInfo fields: the user's options win over what the checkpoint's hyper-parameters say."""
    from segxai_cli.model.checkpoint import _guess_in_channels
    from segxai_cli.model.torchgeo import from_hparams

    fields: dict[str, Any] = dict((from_hparams(hp) if isinstance(hp, dict) else None) or {})
    given = {"family": naming.family, "arch": naming.arch, "encoder": naming.encoder,
             "classes": naming.classes, "in_channels": naming.in_channels}
    fields.update({k: v for k, v in given.items() if v is not None})
    fields["model_kwargs"] = {**fields.get("model_kwargs", {}), **naming.model_kwargs}
    fields.setdefault("family", "smp")
    if fields["family"] == "torchvision":
        fields.setdefault("encoder", "")
        if any(k.startswith(("aux_classifier.", "module.aux_classifier.", "model.aux_classifier.")) for k in state):
            fields["model_kwargs"].setdefault("aux_loss", True)
    missing = [f"--{k}" for k in ("arch", "encoder", "classes") if fields.get(k) is None]
    if missing:
        raise UsageError(f"{path}: the file does not say which model it is; give {', '.join(missing)} "
                         "(e.g. --arch Unet --encoder resnet34 --classes 2)")
    fields.setdefault("in_channels", _guess_in_channels(state) or 3)
    return fields


def _hf_folder(path: Path) -> tuple[nn.Module, ModelInfo, str]:
    from segxai_cli.model.hf import HfAdapter

    if not (path / "config.json").is_file():
        raise InputError(f"{path}: a folder, but not a Hugging Face save_pretrained folder (no config.json)")
    model, config = HfAdapter.from_pretrained(path)
    labels = config.get("id2label") or {}
    names = [str(labels.get(str(i), labels.get(i, f"class_{i}"))) for i in range(len(labels))] or None
    info = ModelInfo(family="hf", arch=type(model).__name__, encoder="",
                     in_channels=int(config.get("num_channels") or _backbone_channels(config)),
                     classes=int(config.get("num_labels") or len(labels) or 2),
                     model_kwargs={"config": config}, class_names=names if names and len(names) >= 2 else None)
    return model, info, "Hugging Face folder"


def _backbone_channels(config: dict[str, Any]) -> int:
    return int((config.get("backbone_config") or {}).get("num_channels") or 3)


def _bare(module: nn.Module, family: str, label: str, naming: Naming, tile: int) -> tuple[nn.Module, ModelInfo]:
    """Bands from the model (or --in-channels), classes from one dummy forward at the tile size."""
    from segxai_cli.model.families import as_adapter

    bands = naming.in_channels or getattr(module, "in_channels", None) or _first_conv_bands(module)
    if bands is None:
        raise UsageError(f"cannot tell how many bands the {label} model takes; give --in-channels")
    adapter = as_adapter(module)
    try:
        with torch.no_grad():
            out = adapter(torch.zeros(1, int(bands), tile, tile))
    except InputError:
        raise
    except Exception as exc:  # the model's own error for a wrong input
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise InputError(f"the {label} model fails on a 1x{bands}x{tile}x{tile} input "
                         f"(check --in-channels and --tile-size): {first}") from None
    classes = int(out.shape[1])
    if naming.classes is not None and naming.classes != classes:
        raise UsageError(f"--classes {naming.classes}: the model outputs {classes} channel(s)")
    info = ModelInfo(family=family, arch=label, encoder="", in_channels=int(bands), classes=classes)
    return module.eval(), info


def _first_conv_bands(module: nn.Module) -> Optional[int]:
    for _, p in module.named_parameters():
        if p.ndim == 4:
            return int(p.shape[1])
    return None

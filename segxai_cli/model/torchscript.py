"""TorchScript models (``torch.jit.save`` files, ``.ts`` or scripted/traced ``.pt``): bare files.

A scripted model has no forward hooks and segxai does not know its architecture, so only the
model-agnostic methods (RISE, occlusion) apply. Its band statistics, bands, classes and tile size
come from ``segxai import`` options, as for a plain state_dict. The segxai checkpoint keeps the
TorchScript archive as bytes (a uint8 tensor: ``torch.load(weights_only=True)`` still never
unpickles Python objects); ``torch.jit.load`` runs TorchScript code, never arbitrary Python.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter, bytes_payload, model_bytes

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip with a ``code/`` folder (``torch.save`` files have none)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.startswith("code/") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load_bytes(data: bytes, where: str = "TorchScript model") -> torch.jit.ScriptModule:
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice: not the user's concern
            return torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    except Exception as exc:  # torch raises RuntimeError and others for corrupt archives
        raise InputError(f"{where}: not a loadable TorchScript archive ({str(exc).strip().splitlines()[0][:160]})") from None


class TorchScriptAdapter(ModelAdapter):
    family = "torchscript"
    bare = True

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return isinstance(module, torch.jit.ScriptModule)

    @classmethod
    def restore(cls, info: "ModelInfo", payload: dict[str, Any]) -> nn.Module:
        return load_bytes(model_bytes(payload, cls.family))

    @classmethod
    def payload(cls, module: nn.Module) -> dict[str, Any]:
        import warnings

        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.save(module.cpu(), buf)
        return bytes_payload(buf.getvalue())

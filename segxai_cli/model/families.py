"""The model families segxai knows, in the order they are tried; the generic adapter comes last.

Adding a family = one file with a :class:`~segxai_cli.model.adapter.ModelAdapter` subclass and one
line in :data:`FAMILIES`. Families needing a heavy optional dependency (transformers, onnxruntime)
import it only when such a model is built or loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter
from segxai_cli.model.hf import HfAdapter
from segxai_cli.model.onnx import OnnxAdapter
from segxai_cli.model.smp import SmpAdapter
from segxai_cli.model.torchgeo import TorchGeoAdapter
from segxai_cli.model.torchscript import TorchScriptAdapter
from segxai_cli.model.torchvision import TorchvisionAdapter

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

FAMILIES: tuple[type[ModelAdapter], ...] = (
    SmpAdapter,
    TorchvisionAdapter,
    HfAdapter,
    TorchGeoAdapter,
    TorchScriptAdapter,
    OnnxAdapter,
    ModelAdapter,  # any nn.Module returning logits
)


def as_adapter(model: Union[nn.Module, ModelAdapter]) -> ModelAdapter:
    """The adapter of the first family that recognises ``model`` (an adapter is returned as is)."""
    if isinstance(model, ModelAdapter):
        return model
    for family in FAMILIES:
        if family.matches(model):
            return family(model)
    raise AssertionError("the generic adapter matches every module")  # pragma: no cover


def family(name: str) -> type[ModelAdapter]:
    for fam in FAMILIES:
        if fam.family == name:
            return fam
    known = ", ".join(f.family for f in FAMILIES)
    raise InputError(f"unknown model family {name!r} (known: {known})")


def build_model(info: "ModelInfo") -> nn.Module:
    """An untrained model of the family and architecture ``info`` describes (no downloads)."""
    return family(info.family).build(info)

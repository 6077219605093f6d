"""The model families segxai knows, in the order they are tried; the generic adapter comes last.

Adding a family = one file with a :class:`~segxai_cli.model.adapter.ModelAdapter` subclass and one
line in :data:`FAMILIES`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter
from segxai_cli.model.smp import SmpAdapter

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

FAMILIES: tuple[type[ModelAdapter], ...] = (
    SmpAdapter,
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

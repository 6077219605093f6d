"""TorchGeo: ``SemanticSegmentationTask`` Lightning checkpoints, and TorchGeo's own 5-layer FCN.

A TorchGeo checkpoint is ``{"state_dict": {"model.…": …}, "hyper_parameters": {"model": "unet",
"backbone": "resnet50", "in_channels": 4, "num_classes": 5, …}}``. Its models are smp models
(``unet``, ``deeplabv3+``, ``upernet``, ``segformer``, ``dpt``), built here by the smp family, or
TorchGeo's ``FCN`` (``model="fcn"``), re-declared below with the same parameter names so that
TorchGeo itself is not needed. Older TorchGeo (< 0.5) named them ``segmentation_model``,
``encoder_name`` and ``encoder_weights``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

SMP_ARCHS = {"unet": "Unet", "deeplabv3+": "DeepLabV3Plus", "upernet": "UPerNet", "segformer": "Segformer",
             "dpt": "DPT", "fpn": "FPN", "pspnet": "PSPNet", "unet++": "UnetPlusPlus", "manet": "MAnet",
             "linknet": "Linknet", "pan": "PAN", "deeplabv3": "DeepLabV3"}


class FCN(nn.Module):
    """TorchGeo's ``torchgeo.models.FCN``: five 3×3 conv + LeakyReLU layers and a 1×1 classifier."""

    def __init__(self, in_channels: int, classes: int, num_filters: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(5):
            layers += [nn.Conv2d(in_channels if i == 0 else num_filters, num_filters, 3, 1, 1), nn.LeakyReLU(inplace=True)]
        self.backbone = nn.Sequential(*layers)
        self.last = nn.Conv2d(num_filters, classes, 1, 1, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(self.backbone(x))


class TorchGeoAdapter(ModelAdapter):
    """TorchGeo's FCN: no downsampling; ``encoder.N`` = conv layer N (after its LeakyReLU)."""

    family = "torchgeo"

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return isinstance(module, FCN) or type(module).__module__.startswith("torchgeo.models.fcn")

    @classmethod
    def build(cls, info: "ModelInfo") -> nn.Module:
        if info.arch != "FCN":
            raise InputError(f"unknown TorchGeo model {info.arch!r} (its smp models are stored as family smp)")
        return FCN(info.in_channels, info.classes, int(info.model_kwargs.get("num_filters", 64)))

    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        acts = [f"backbone.{i}" for i in range(1, 10, 2)]
        out: dict[str, tuple[str, Optional[int]]] = {f"encoder.{i}": (p, None) for i, p in enumerate(acts[:3], 1)}
        out["bottleneck"] = (acts[2], None)
        out.update({"decoder.0": (acts[3], None), "decoder.1": (acts[4], None), "decoder.last": (acts[4], None)})
        return out


def from_hparams(hp: dict[str, Any]) -> Optional[dict[str, Any]]:
    """ModelInfo fields from TorchGeo hyper-parameters, or None when they are not TorchGeo's."""
    model = hp.get("model", hp.get("segmentation_model"))
    backbone = hp.get("backbone", hp.get("encoder_name"))
    if not isinstance(model, str):
        return None
    classes = hp.get("num_classes") or hp.get("num_labels") or 1
    fields = {"in_channels": int(hp.get("in_channels", 3)), "classes": int(classes)}
    key = model.lower()
    if key == "fcn":
        return {**fields, "family": "torchgeo", "arch": "FCN", "encoder": "",
                "model_kwargs": {"num_filters": int(hp.get("num_filters", 64))}}
    if key not in SMP_ARCHS:
        raise InputError(f"TorchGeo model {model!r} is not one segxai can build (known: fcn, {', '.join(SMP_ARCHS)})")
    if not isinstance(backbone, str):
        raise InputError(f"TorchGeo checkpoint: model {model!r} without a backbone name")
    return {**fields, "family": "smp", "arch": SMP_ARCHS[key], "encoder": backbone, "model_kwargs": {}}

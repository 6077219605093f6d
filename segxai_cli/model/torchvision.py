"""torchvision segmentation models: FCN, DeepLabV3 and LR-ASPP (``{"out": …, "aux": …}`` outputs).

Built with ``weights=None`` (never downloads); a model trained on other than 3 bands has its first
convolution replaced by one taking ``in_channels``. The logits are ``output["out"]`` (the auxiliary
head is ignored); the models upsample to the input themselves.

Aliases: ``encoder.N`` is the last backbone block at each resolution (found by a dummy forward),
``bottleneck`` the backbone's output; ``decoder.N`` the head: DeepLabV3 ``classifier.0`` (ASPP) /
``classifier.3`` (the ReLU before the classifier conv), FCN ``classifier.0`` / ``classifier.2``,
LR-ASPP ``classifier.cbr`` (its only feature stage: ``decoder.0`` = ``decoder.last``).
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Optional

from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter, stage_aliases
from segxai_cli.model.trace import input_bands, resolution_stages

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

ARCHS = ("fcn_resnet50", "fcn_resnet101", "deeplabv3_resnet50", "deeplabv3_resnet101",
         "deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large")
_HEADS = {"DeepLabHead": ("classifier.0", "classifier.3"), "FCNHead": ("classifier.0", "classifier.2"),
          "LRASPPHead": ("classifier.cbr",)}
_STAGES: "weakref.WeakKeyDictionary[nn.Module, list[str]]" = weakref.WeakKeyDictionary()


class TorchvisionAdapter(ModelAdapter):
    family = "torchvision"

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return type(module).__module__.startswith("torchvision.models.segmentation")

    @classmethod
    def build(cls, info: "ModelInfo") -> nn.Module:
        from torchvision.models import segmentation

        if info.arch not in ARCHS:
            raise InputError(f"unknown torchvision segmentation model {info.arch!r} (known: {', '.join(ARCHS)})")
        kw = {k: v for k, v in info.model_kwargs.items() if k == "aux_loss" and not info.arch.startswith("lraspp")}
        model = getattr(segmentation, info.arch)(weights=None, weights_backbone=None, num_classes=info.classes, **kw)
        if info.in_channels != 3:
            _replace_first_conv(model.backbone, info.in_channels)
        return model

    @property
    def stride(self) -> int:
        return 8  # the heads upsample to the input; the backbones downsample by 8 (dilated) or 16

    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        head = _HEADS.get(type(getattr(self.module, "classifier", None)).__name__, ())
        return stage_aliases(self._stages(), list(head))

    def _stages(self) -> list[str]:
        if self.module not in _STAGES:
            _STAGES[self.module] = resolution_stages(self.module, "backbone", input_bands(self.module), self.example_size())
        return _STAGES[self.module]


def _replace_first_conv(backbone: nn.Module, bands: int) -> None:
    for name, m in backbone.named_modules():
        if isinstance(m, nn.Conv2d):
            parent = backbone.get_submodule(name.rpartition(".")[0]) if "." in name else backbone
            new = nn.Conv2d(bands, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation, m.groups,
                            m.bias is not None)
            setattr(parent, name.rpartition(".")[2], new)
            return

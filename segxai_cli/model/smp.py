"""segmentation-models-pytorch: building models, layer aliases, and the U-Net decoder suffix.

Aliases (``.`` and ``-`` interchangeable, negative indices count from the end):

==================  ===========================================================================
``bottleneck``      deepest encoder feature map (last element of ``model.encoder(x)``)
``encoder.N``       encoder feature map N (``model.encoder(x)[N]``; 1 = stride 2 ... depth)
``decoder.N``       decoder stage N, counted from the bottleneck towards the output:
                    Unet ``decoder.blocks.N``; UnetPlusPlus the top (full-resolution) path
                    ``decoder.blocks.x_0_N``; FPN ``decoder.p5/p4/p3/p2``; DeepLabV3+
                    ``decoder.aspp`` / ``decoder.block1`` / ``decoder.block2``
``decoder.last``    the last decoder stage (same as ``decoder.-1``)
==================  ===========================================================================

Encoder aliases name a list element of the encoder's output, so they work for every smp encoder;
they are redirected to the encoder submodule that *produced* that feature map (found once per
model by a traced dummy forward): a gradient taken at the list element would miss the path through
the next encoder stage, which consumed the tensor before the list was returned.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Optional

from torch import nn

from segxai_cli.errors import InputError, UsageError
from segxai_cli.model.adapter import LayerRef, ModelAdapter, SuffixRunner
from segxai_cli.model.trace import example_input, input_bands, trace
from segxai_cli.model.unet_suffix import UnetSuffix

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

_PRODUCERS: "weakref.WeakKeyDictionary[nn.Module, dict[int, str]]" = weakref.WeakKeyDictionary()


class SmpAdapter(ModelAdapter):
    family = "smp"

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return any(c.__module__.startswith("segmentation_models_pytorch") for c in type(module).__mro__)

    @classmethod
    def build(cls, info: "ModelInfo") -> nn.Module:
        """An untrained smp model of the described architecture (never downloads weights)."""
        import segmentation_models_pytorch as smp

        try:
            return smp.create_model(
                info.arch, encoder_name=info.encoder, encoder_weights=None,
                in_channels=info.in_channels, classes=info.classes, **info.model_kwargs,
            )
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            text = str(exc).strip().splitlines()
            raise InputError(f"cannot build model {info.arch}/{info.encoder}: {text[0] if text else exc!r}") from None

    # ---------------------------------------------------------------- geometry
    @property
    def encoder_depth(self) -> Optional[int]:
        enc = getattr(self.module, "encoder", None)
        if enc is None:
            return None
        depth = getattr(enc, "_depth", None) or getattr(enc, "depth", None)
        if isinstance(depth, int):
            return depth
        out_channels = getattr(enc, "out_channels", None)
        return len(out_channels) - 1 if out_channels is not None else None

    @property
    def stride(self) -> int:
        enc = getattr(self.module, "encoder", None)
        depth = self.encoder_depth or 5
        out_stride = getattr(enc, "output_stride", None)
        return int(min(2**depth, out_stride)) if isinstance(out_stride, int) else int(2**depth)

    # ---------------------------------------------------------------- layers
    def decoder_stages(self) -> list[str]:
        """Dotted paths of the decoder stages of known smp decoders, bottleneck side first."""
        dec = getattr(self.module, "decoder", None)
        if dec is None:
            return []
        blocks = getattr(dec, "blocks", None)
        if isinstance(blocks, nn.ModuleList):  # Unet
            return [f"decoder.blocks.{i}" for i in range(len(blocks))]
        if isinstance(blocks, nn.ModuleDict):  # UnetPlusPlus: top row x_0_j
            top = sorted((k for k in blocks.keys() if k.startswith("x_0_")), key=lambda k: int(k.split("_")[2]))
            return [f"decoder.blocks.{k}" for k in top]
        if all(hasattr(dec, p) for p in ("p5", "p4", "p3", "p2")):  # FPN
            return ["decoder.p5", "decoder.p4", "decoder.p3", "decoder.p2"]
        if all(hasattr(dec, p) for p in ("aspp", "block1", "block2")):  # DeepLabV3+
            return ["decoder.aspp", "decoder.block1", "decoder.block2"]
        if hasattr(dec, "aspp"):  # DeepLabV3
            return ["decoder.aspp"] if not isinstance(dec, nn.Sequential) else ["decoder"]
        return []

    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        out: dict[str, tuple[str, Optional[int]]] = {}
        depth = self.encoder_depth
        if depth is not None:
            out["bottleneck"] = ("encoder", depth)
            for i in range(1, depth + 1):
                out[f"encoder.{i}"] = ("encoder", i)
        stages = self.decoder_stages()
        for i, path in enumerate(stages):
            out[f"decoder.{i}"] = (path, None)
        if stages:
            out["decoder.last"] = (stages[-1], None)
        return out

    def resolve_alias(self, alias: str, path: str, index: Optional[int]) -> Optional[LayerRef]:
        modules = dict(self.module.named_modules())
        if index is None:
            return LayerRef(path, modules[path])
        producer = self._encoder_producers().get(index)
        if producer is not None:
            return LayerRef(producer, modules[producer])
        if index == self.encoder_depth:  # nothing in the encoder consumes it: list capture is exact
            return LayerRef(f"{path}[{index}]", modules[path], index)
        raise UsageError(
            f"layer alias {alias!r}: cannot find the encoder module producing feature map {index}; "
            "use its dotted module name (see `segxai layers`)"
        )

    def _encoder_producers(self) -> dict[int, str]:
        """Encoder feature index -> the encoder submodule producing it (traced once per model)."""
        model = self.module
        if model in _PRODUCERS:
            return _PRODUCERS[model]
        size = max(64, 2 * self.stride)
        tr = trace(model, example_input(model, input_bands(model), size))
        feats = tr.outputs.get("encoder")
        found: dict[int, str] = {}
        if isinstance(feats, (list, tuple)):
            for i, f in enumerate(feats):
                name = tr.producers.get(id(f))
                if name is not None and name.startswith("encoder.") and tr.calls.get(name) == 1:
                    found[i] = name
        _PRODUCERS[model] = found
        return found

    # ---------------------------------------------------------------- Ablation-CAM fast path
    def suffix(self, ref: LayerRef) -> Optional[SuffixRunner]:
        model = self.module
        dec = getattr(model, "decoder", None)
        if (
            ref.index is not None
            or dec is None
            or type(dec).__name__ != "UnetDecoder"
            or not hasattr(model, "encoder")
            or not hasattr(model, "segmentation_head")
            or getattr(model, "classification_head", None) is not None
        ):
            return None
        for n, blk in enumerate(dec.blocks):
            if blk is ref.module:
                return UnetSuffix(model, n)
        return None

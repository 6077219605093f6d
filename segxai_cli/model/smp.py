"""segmentation-models-pytorch: building models, layer aliases, and the U-Net decoder suffix.

Aliases (``.`` and ``-`` interchangeable, negative indices count from the end):

==================  ===========================================================================
``bottleneck``      deepest encoder feature map (last element of ``model.encoder(x)``)
``encoder.N``       encoder feature map N (``model.encoder(x)[N]``; 1 = stride 2 ... depth)
``decoder.N``       decoder stage N, counted from the bottleneck towards the output, for every
                    smp 0.6 architecture (:mod:`segxai_cli.model.smp_stages`)
``decoder.last``    the last decoder stage (same as ``decoder.-1``)
==================  ===========================================================================

Encoder aliases name a list element of the encoder's output, so they work for every smp encoder;
they are redirected to the encoder submodule that *produced* that feature map (found once per
model by a traced dummy forward at the model's tile size): a gradient taken at the list element
would miss the path through the next encoder stage, which consumed the tensor before the list was
returned. DPT's encoder aliases name the ViT blocks the decoder reads; their (B, N, C) tokens are
reshaped onto the patch grid (class tokens dropped) by :meth:`SmpAdapter.prefix_tokens`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Optional

from torch import nn

from segxai_cli.errors import InputError, UsageError
from segxai_cli.model.adapter import LayerRef, ModelAdapter, SuffixRunner
from segxai_cli.model.smp_stages import decoder_stages
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
    def vit(self) -> Optional[nn.Module]:
        """The timm ViT of a DPT model (token blocks), else None."""
        enc = getattr(self.module, "encoder", None)
        return getattr(enc, "model", None) if hasattr(enc, "_output_indices") else None

    @property
    def encoder_depth(self) -> Optional[int]:
        enc = getattr(self.module, "encoder", None)
        if enc is None:
            return None
        if self.vit is not None:
            return len(enc._output_indices)
        depth = getattr(enc, "_depth", None) or getattr(enc, "depth", None)
        if isinstance(depth, int):
            return depth
        out_channels = getattr(enc, "out_channels", None)
        return len(out_channels) - 1 if out_channels is not None else None

    @property
    def stride(self) -> int:
        enc = getattr(self.module, "encoder", None)
        if self.vit is not None:  # the patch size
            return int(enc.output_stride)
        depth = self.encoder_depth or 5
        out_stride = getattr(enc, "output_stride", None)
        return int(min(2**depth, out_stride)) if isinstance(out_stride, int) else int(2**depth)

    @property
    def min_tile(self) -> int:
        # PAN's feature pyramid attention pools the bottleneck three times by 2 (7/5/3 convolutions)
        return 8 * self.stride if type(getattr(self.module, "decoder", None)).__name__ == "PANDecoder" else self.stride

    def tile_problem(self, tile: int) -> Optional[str]:
        vit = self.vit
        if vit is not None and not getattr(vit, "dynamic_img_size", False):
            fixed = getattr(getattr(vit, "patch_embed", None), "img_size", None)
            if fixed is not None and tuple(fixed) != (tile, tile):
                return f"must be {fixed[0]}: this ViT encoder was built for {fixed[0]}x{fixed[1]} inputs (no dynamic_img_size)"
        return super().tile_problem(tile)

    def example_size(self) -> int:
        vit = self.vit
        if vit is not None and not getattr(vit, "dynamic_img_size", False):
            return int(vit.patch_embed.img_size[0])
        return super().example_size()

    def prefix_tokens(self) -> Optional[int]:
        vit = self.vit
        return int(getattr(vit, "num_prefix_tokens", 0)) if vit is not None else None

    # ---------------------------------------------------------------- layers
    def decoder_stages(self) -> list[str]:
        """Dotted paths of the decoder stages, bottleneck side first (:mod:`segxai_cli.model.smp_stages`)."""
        return decoder_stages(self.module)

    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        out: dict[str, tuple[str, Optional[int]]] = {}
        depth = self.encoder_depth
        vit = self.vit
        if vit is not None:  # DPT: the token blocks the decoder reads
            taps = [f"encoder.model.blocks.{i}" for i in self.module.encoder._output_indices]
            out["bottleneck"] = (taps[-1], None)
            out.update({f"encoder.{i}": (path, None) for i, path in enumerate(taps, 1)})
        elif depth is not None:
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
        tr = trace(model, example_input(model, input_bands(model), self.example_size()))
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

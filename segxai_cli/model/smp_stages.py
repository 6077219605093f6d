"""The decoder stages of every smp 0.6 architecture, bottleneck side first (``decoder.N`` aliases).

Each entry lists module paths in the order the decoder runs them; the last one is
``decoder.last`` — the feature map the segmentation head reads (or the stage just before it).
Every architecture has at least two stages, so ``decoder.0`` and ``decoder.last`` differ.
"""

from __future__ import annotations

from torch import nn


def _children(dec: nn.Module, name: str, reverse: bool = False) -> list[str]:
    mods = getattr(dec, name, None)
    if not isinstance(mods, (nn.ModuleList, nn.Sequential)):
        return []
    idx = list(range(len(mods)))
    return [f"decoder.{name}.{i}" for i in (idx[::-1] if reverse else idx)]


def _present(dec: nn.Module, *names: str) -> list[str]:
    return [f"decoder.{n}" for n in names if isinstance(getattr(dec, n, None), nn.Module)]


def decoder_stages(model: nn.Module) -> list[str]:
    """Dotted paths of the decoder stages of a known smp decoder, bottleneck side first."""
    dec = getattr(model, "decoder", None)
    if dec is None:
        return []
    kind = type(dec).__name__
    if kind == "UnetPlusPlusDecoder":  # the top (full-resolution) path x_0_j
        top = sorted((k for k in dec.blocks.keys() if k.startswith("x_0_")), key=lambda k: int(k.split("_")[2]))
        return [f"decoder.blocks.{k}" for k in top]
    if kind in ("UnetDecoder", "LinknetDecoder", "MAnetDecoder"):
        return _children(dec, "blocks")
    if kind == "FPNDecoder":
        return _present(dec, "p5", "p4", "p3", "p2")
    if kind == "DeepLabV3PlusDecoder":
        return _present(dec, "aspp", "block1", "block2")
    if kind == "DeepLabV3Decoder":  # aspp → conv → bn → relu: the ASPP and the head's input
        return _present(dec, "aspp", "relu")
    if kind == "PSPDecoder":  # pyramid pooling, then the fusing conv (Conv2dReLU)
        return _present(dec, "psp", "conv")
    if kind == "PANDecoder":  # feature pyramid attention, then the global attention upsamplers
        return _present(dec, "fpa", "gau3", "gau2", "gau1")
    if kind == "UPerNetDecoder":  # PSP head, FPN convs from coarse to fine, fusion
        return _present(dec, "psp") + _children(dec, "fpn_conv_blocks") + _present(dec, "fusion_block")
    if kind == "SegformerDecoder":  # per-stage MLPs (deepest first), then the fusing conv
        return _children(dec, "mlp_stage") + _present(dec, "fuse_stage")
    if kind == "DPTDecoder":  # reassembled token maps are fused from the deepest one on
        return _children(dec, "fusion_blocks")
    blocks = getattr(dec, "blocks", None)  # an unknown decoder with a list of blocks
    return _children(dec, "blocks") if isinstance(blocks, nn.ModuleList) else []

"""Tiny, randomly initialised models of every family segxai reads (CPU, milliseconds per forward).

Each entry gives a :class:`ModelInfo` that the family's own ``build`` turns into the model, so the
tests exercise the real build/save/load path. Small encoders (resnet18 at depth 3, a 32-wide ViT),
small decoders, 4 input bands.
"""

from __future__ import annotations

import torch

from segxai_cli.model.families import build_model
from segxai_cli.model.info import ModelInfo
from segxai_cli.raster.stats import BandStats

BANDS = 4
TILE = 64

SMP = {
    "Unet": dict(encoder_depth=3, decoder_channels=[16, 8, 8]),
    "UnetPlusPlus": dict(encoder_depth=3, decoder_channels=[16, 8, 8]),
    "FPN": dict(encoder_depth=4, decoder_pyramid_channels=32, decoder_segmentation_channels=32),
    "PSPNet": dict(encoder_depth=3, psp_out_channels=16),
    "DeepLabV3": dict(encoder_depth=3, decoder_channels=16),
    "DeepLabV3Plus": dict(encoder_depth=3, decoder_channels=16, encoder_output_stride=8),
    "Linknet": dict(encoder_depth=3),
    "MAnet": dict(encoder_depth=3, decoder_channels=[16, 8, 8], decoder_pab_channels=8),
    "PAN": dict(encoder_depth=3, decoder_channels=16),
    "UPerNet": dict(encoder_depth=3, decoder_channels=16),
    "Segformer": dict(encoder_depth=3, decoder_segmentation_channels=16),
    "DPT": dict(encoder_depth=2, decoder_intermediate_channels=[8, 16], decoder_fusion_channels=8, img_size=TILE,
                embed_dim=32, num_heads=2, dynamic_img_size=True),
}


def segformer_config(bands: int = BANDS, classes: int = 2) -> dict:
    from transformers import SegformerConfig

    return SegformerConfig(num_channels=bands, num_labels=classes, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                           num_attention_heads=[1, 1, 2, 2], decoder_hidden_size=16).to_dict()


def upernet_config(bands: int = BANDS, classes: int = 2) -> dict:
    from transformers import ConvNextConfig, UperNetConfig

    bb = ConvNextConfig(num_channels=bands, hidden_sizes=[8, 16, 24, 32], depths=[1, 1, 1, 1],
                        out_features=["stage1", "stage2", "stage3", "stage4"])
    return UperNetConfig(backbone_config=bb, num_labels=classes, hidden_size=16, use_auxiliary_head=False).to_dict()


def infos() -> dict[str, ModelInfo]:
    """Family label -> ModelInfo of a tiny model (4 bands, 2 classes, 64-px tiles)."""
    out = {}
    for arch, kw in SMP.items():
        enc = "tu-vit_tiny_patch16_224" if arch == "DPT" else "tu-resnet10t"  # timm drops unused stages
        out[f"smp-{arch}"] = ModelInfo(arch=arch, encoder=enc, in_channels=BANDS, classes=2, model_kwargs=kw)
    out["torchvision-deeplabv3"] = ModelInfo(family="torchvision", arch="deeplabv3_mobilenet_v3_large", encoder="",
                                             in_channels=BANDS, classes=2, model_kwargs={"aux_loss": True})
    out["torchvision-lraspp"] = ModelInfo(family="torchvision", arch="lraspp_mobilenet_v3_large", encoder="",
                                          in_channels=BANDS, classes=2)
    out["torchgeo-fcn"] = ModelInfo(family="torchgeo", arch="FCN", encoder="", in_channels=BANDS, classes=2,
                                    model_kwargs={"num_filters": 8})
    out["hf-segformer"] = ModelInfo(family="hf", arch="SegformerForSemanticSegmentation", encoder="",
                                    in_channels=BANDS, classes=2, model_kwargs={"config": segformer_config()})
    out["hf-upernet"] = ModelInfo(family="hf", arch="UperNetForSemanticSegmentation", encoder="",
                                  in_channels=BANDS, classes=2, model_kwargs={"config": upernet_config()})
    for info in out.values():
        info.tile_size = TILE
        info.band_stats = BandStats(tuple([1000.0] * info.in_channels), tuple([300.0] * info.in_channels))
        info.source_dtype = "uint16"
    return out


def build(info: ModelInfo, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(info).eval()


def tiny_unet(bands: int = BANDS, classes: int = 2, seed: int = 0) -> torch.nn.Module:
    import segmentation_models_pytorch as smp

    torch.manual_seed(seed)
    return smp.Unet("tu-resnet10t", encoder_weights=None, in_channels=bands, classes=classes, encoder_depth=3,
                    decoder_channels=(16, 8, 8)).eval()

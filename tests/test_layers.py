"""Layer names and aliases (segxai_cli.model.layers) on real tiny smp models."""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from segxai_cli.errors import SegxaiError
from segxai_cli.model.layers import describe_layers, resolve_layer


def build(arch="Unet", enc="resnet18", **kw):
    torch.manual_seed(0)
    if arch in ("Unet", "UnetPlusPlus"):  # depth-reduced everywhere: builds fast
        kw = {"encoder_depth": 3, "decoder_channels": (16, 8, 8), **kw}
    elif arch == "FPN":
        kw = {"encoder_depth": 3, "decoder_pyramid_channels": 16, "decoder_segmentation_channels": 32, **kw}
    elif arch == "DeepLabV3Plus":
        kw = {"encoder_depth": 3, "decoder_channels": 16, "encoder_output_stride": 8, **kw}
    return getattr(smp, arch)(enc, encoder_weights=None, classes=2, **kw).eval()


@pytest.fixture(scope="module")
def unet():
    return build()


def test_exact_module_path(unet):
    ref = resolve_layer(unet, "decoder.blocks.1.conv2")
    assert ref.module is unet.decoder.blocks[1].conv2 and ref.index is None


@pytest.mark.parametrize("alias,path", [
    ("decoder.0", "decoder.blocks.0"),
    ("decoder-2", "decoder.blocks.2"),
    ("decoder.-1", "decoder.blocks.2"),
    ("decoder.last", "decoder.blocks.2"),
    ("Decoder-Last", "decoder.blocks.2"),
    ("bottleneck", "encoder.layer2"),  # encoder_depth=3: the deepest stage is layer2
    ("encoder.1", "encoder.relu"),
    ("encoder-2", "encoder.layer1"),
    ("encoder.3", "encoder.layer2"),
    ("encoder.-1", "encoder.layer2"),
])
def test_unet_aliases(unet, alias, path):
    ref = resolve_layer(unet, alias)
    assert ref.name == path and ref.module is dict(unet.named_modules())[path]


@pytest.mark.parametrize("arch,alias,path", [
    ("UnetPlusPlus", "decoder.0", "decoder.blocks.x_0_0"),
    ("UnetPlusPlus", "decoder.last", "decoder.blocks.x_0_2"),
    ("FPN", "decoder.0", "decoder.p5"),
    ("FPN", "decoder-3", "decoder.p2"),
    ("FPN", "bottleneck", "encoder.layer2"),
    ("DeepLabV3Plus", "decoder.0", "decoder.aspp"),
    ("DeepLabV3Plus", "decoder.last", "decoder.block2"),
])
def test_other_architectures(arch, alias, path):
    model = build(arch)
    assert resolve_layer(model, alias).name == path


@pytest.mark.parametrize("enc,expected", [
    ("mobilenet_v2", {"encoder.2": "encoder.features.3", "bottleneck": "encoder.features.6"}),
    ("efficientnet-b0", {"encoder.2": "encoder._blocks.2", "bottleneck": "encoder._blocks.4"}),
])
def test_encoder_aliases_find_the_producing_module(enc, expected):
    model = build(enc=enc)
    for alias, path in expected.items():
        assert resolve_layer(model, alias).name == path


def test_encoder_alias_gives_the_encoder_feature_map(unet):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        feats = unet.encoder(x)
    got = {}
    ref = resolve_layer(unet, "encoder.2")
    h = ref.module.register_forward_hook(lambda m, i, o: got.setdefault("a", o.clone()))
    with torch.no_grad():
        unet.encoder(x)
    h.remove()
    torch.testing.assert_close(got["a"], feats[2])


def test_unknown_layer_one_line_with_close_names(unet):
    with pytest.raises(SegxaiError) as e:
        resolve_layer(unet, "decoder.block.1")
    msg = str(e.value)
    assert "decoder.blocks.1" in msg and "\n" not in msg and "segxai layers" in msg


def test_alias_out_of_range(unet):
    with pytest.raises(SegxaiError):
        resolve_layer(unet, "decoder.7")
    with pytest.raises(SegxaiError):
        resolve_layer(unet, "encoder.9")


def test_non_smp_model_takes_module_paths_only():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1))
    assert resolve_layer(model, "1").module is model[1]
    with pytest.raises(SegxaiError):
        resolve_layer(model, "bottleneck")


def test_describe_layers(unet):
    unet.train()
    rows = describe_layers(unet, bands=3, tile_size=64)
    assert unet.training  # mode restored
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in unet.modules())
    by_name = {r.name: r for r in rows}
    assert by_name["decoder.blocks.0"].shape == "1x16x16x16"
    assert by_name["decoder.blocks.0"].type == "UnetDecoderBlock"
    assert set(by_name["decoder.blocks.2"].aliases) == {"decoder.2", "decoder.last"}
    assert set(by_name["encoder.layer2"].aliases) == {"bottleneck", "encoder.3"}
    assert by_name["encoder.layer1"].shape == "1x64x16x16"
    assert by_name["encoder"].shape.startswith("[")  # list output
    assert len(rows) == len([n for n, _ in unet.named_modules() if n])
    unet.eval()

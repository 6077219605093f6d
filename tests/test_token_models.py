"""Token models (ViT blocks of smp's DPT): CAMs equal pytorch-grad-cam with the equivalent
``reshape_transform``; the token grid rule; and the torchvision DeepLabV3 maps scaled to [0, 1]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segxai_cli.cam import explain_batch
from segxai_cli.errors import UsageError
from segxai_cli.model.tokens import token_grid, tokens_to_maps
from tests.model_zoo import build, infos


def test_token_grid_drops_class_and_register_tokens():
    assert token_grid(1 + 16, (64, 64)) == (1, 4, 4)
    assert token_grid(5 + 196, (224, 224)) == (5, 14, 14)
    assert token_grid(32, (64, 128)) == (0, 4, 8)
    assert token_grid(17, (64, 64), prefix=1) == (1, 4, 4)
    t = torch.arange(2 * 17 * 3, dtype=torch.float32).view(2, 17, 3)
    m = tokens_to_maps(t, (64, 64))
    assert m.shape == (2, 3, 4, 4) and torch.equal(m[:, :, 0, 1], t[:, 2, :])
    with pytest.raises(UsageError, match="patch grid"):
        token_grid(7, (64, 64), prefix=0)


@pytest.fixture(scope="module")
def dpt():
    return build(infos()["smp-DPT"])


@pytest.mark.parametrize("method", ["gradcam", "hirescam", "layercam"])
def test_vit_cams_equal_pgc_with_reshape_transform(dpt, method):
    from pytorch_grad_cam import GradCAM, HiResCAM, LayerCAM
    from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

    x = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    block = dpt.encoder.model.blocks[5]

    def reshape_transform(t, h=4, w=4):  # pgc's ViT recipe: drop the class token, tokens -> grid
        return t[:, 1:, :].reshape(t.size(0), h, w, t.size(2)).permute(0, 3, 1, 2)

    with torch.no_grad():
        mask = (dpt(x).argmax(1) == 1).float()
    ours = explain_batch(dpt, x, "encoder.1", [method], target_class=1, region=mask.bool())[method]
    cls = {"gradcam": GradCAM, "hirescam": HiResCAM, "layercam": LayerCAM}[method]
    with cls(model=dpt, target_layers=[block], reshape_transform=reshape_transform) as cam:
        ref = cam(input_tensor=x, targets=[SemanticSegmentationTarget(1, mask[i].numpy()) for i in range(2)])
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-3)


def test_torchvision_deeplabv3_region_maps_reach_one():
    """A DeepLabV3 head behind an untrained BatchNorm has activations ~1e-9: pgc's absolute epsilon
    in the min-max (range + 1e-7) used to cap the maps at ~0.01–0.13; the min-max is now scale-invariant."""
    info = infos()["torchvision-deeplabv3"]
    net = build(info)
    x = torch.randn(2, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(2, 64, 64, dtype=torch.bool)
    region[:, 10:30, 10:30] = True
    for layer in ("classifier.0", "decoder.last", "bottleneck"):
        maps = explain_batch(net, x, layer, ["gradcam", "eigencam"], target_class=1, region=region)
        for m in maps.values():
            np.testing.assert_allclose(m.amax((1, 2)).numpy(), 1.0, atol=1e-5)
            assert float(m.min()) == 0.0

"""Edge cases and engine guarantees: one pass, no weight gradients, state restored, errors."""

from __future__ import annotations

import warnings

import pytest
import segmentation_models_pytorch as smp
import torch
from torch import nn

from segxai_cli.cam import METHODS, explain_batch, predict_region
from segxai_cli.cam.registry import names

GRADIENT_METHODS = names("gradient")
from segxai_cli.cam.post import aggregate
from segxai_cli.errors import SegxaiError

ALL = list(METHODS)
FAST = {"rise_masks": 48}  # the model-agnostic methods run on every edge case too, with few masks


def unet(bands=3, classes=2, seed=0, enc="resnet18"):
    torch.manual_seed(seed)
    return smp.Unet(enc, encoder_weights=None, in_channels=bands, classes=classes,
                    encoder_depth=3, decoder_channels=(16, 8, 8)).eval()


def images(b=2, bands=3, size=32, seed=1):
    return torch.randn(b, bands, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def net():
    return unet()


@pytest.fixture(scope="module")
def x():
    return images()


def test_shapes_dtype_range_all_methods(net, x):
    out = explain_batch(net, x, "decoder.blocks.1", ALL, target_class=1, **FAST)
    assert list(out) == ALL
    for m, v in out.items():
        assert v.shape == (2, 32, 32) and v.dtype == torch.float32, m
        assert torch.isfinite(v).all() and v.min() >= 0 and v.max() <= 1 + 1e-6, m


def test_one_forward_one_partial_backward_no_weight_grads(net, x):
    calls = []
    prefix_requires_grad = []
    suffix_requires_grad = []
    hooks = [
        net.register_forward_pre_hook(lambda m, i: calls.append(1)),
        net.encoder.layer1.register_forward_hook(lambda m, i, o: prefix_requires_grad.append(o.requires_grad)),
        net.decoder.blocks[2].register_forward_hook(lambda m, i, o: suffix_requires_grad.append(o.requires_grad)),
    ]
    try:
        explain_batch(net, x, "decoder.blocks.1", list(GRADIENT_METHODS) + ["eigencam"], target_class=1)
    finally:
        for h in hooks:
            h.remove()
    assert len(calls) == 1  # one forward for all gradient methods (+ Eigen-CAM)
    assert prefix_requires_grad == [False]  # no graph before the target layer: backward stops at A
    assert suffix_requires_grad == [True]
    assert all(p.grad is None for p in net.parameters())  # no weight gradients


def test_model_state_restored_and_no_hooks_left(x):
    m = unet()
    m.train()
    m.decoder.blocks[0].conv1[0].weight.requires_grad_(False)
    before = [p.requires_grad for p in m.parameters()]
    explain_batch(m, x, ["decoder.0", "decoder.2"], ALL, target_class=1, **FAST)
    assert m.training
    assert [p.requires_grad for p in m.parameters()] == before
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())


def test_deterministic(net, x):
    a = explain_batch(net, x, "decoder.blocks.0", ALL, target_class=1, **FAST)
    b = explain_batch(net, x, "decoder.blocks.0", ALL, target_class=1, **FAST)
    for m in ALL:
        assert torch.equal(a[m], b[m]), m


def test_batch_of_one_equals_row_of_batch(net, x):
    full = explain_batch(net, x, "decoder.blocks.0", ALL, target_class=1, **FAST)
    one = explain_batch(net, x[1:], "decoder.blocks.0", ALL, target_class=1, **FAST)
    for m in ALL:
        assert one[m].shape == (1, 32, 32)
        torch.testing.assert_close(one[m][0], full[m][1], atol=1e-4, rtol=0, msg=m)


def test_batch_chunk_equals_unchunked(net):
    xx = images(3)
    a = explain_batch(net, xx, "decoder.blocks.1", ALL, target_class=1, **FAST)
    b = explain_batch(net, xx, "decoder.blocks.1", ALL, target_class=1, **FAST, batch_chunk=2)
    for m in ALL:
        torch.testing.assert_close(a[m], b[m], atol=1e-4, rtol=0, msg=m)


def test_empty_region_gives_zero_map_and_warning(net, x):
    region = predict_region(net(x).detach(), 1)
    region[0] = False
    with pytest.warns(UserWarning, match="empty target region"):
        out = explain_batch(net, x, "decoder.blocks.1", ALL, target_class=1, **FAST, region=region)
    alone = explain_batch(net, x[1:], "decoder.blocks.1", ALL, target_class=1, **FAST, region=region[1:])
    for m in ALL:
        assert torch.isfinite(out[m]).all(), m
        assert (out[m][0] == 0).all(), m
        torch.testing.assert_close(out[m][1], alone[m][0], atol=1e-4, rtol=0, msg=m)


def test_empty_region_warning_has_its_own_category(net, x):
    from segxai_cli.cam import EmptyRegionWarning

    with pytest.warns(EmptyRegionWarning):
        explain_batch(net, x, "decoder.blocks.1", ["gradcam"], region=torch.zeros(2, 32, 32, dtype=torch.bool))


def test_return_logits_is_the_shared_forward(net, x):
    maps, logits = explain_batch(net, x, "decoder.blocks.1", ["gradcam"], return_logits=True)
    with torch.no_grad():
        torch.testing.assert_close(logits, net(x))
    chunked, logits2 = explain_batch(net, x, "decoder.blocks.1", ["gradcam"], return_logits=True, batch_chunk=1)
    torch.testing.assert_close(logits2, logits)
    torch.testing.assert_close(chunked["gradcam"], maps["gradcam"], atol=1e-4, rtol=0)


def test_valid_restricts_the_region(net, x):
    """Pixels outside `valid` (nodata, padding) never count: same as passing the restricted region."""
    with torch.no_grad():
        pred = predict_region(net(x), 1)
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    valid[:, :, 16:] = False
    a = explain_batch(net, x, "decoder.blocks.1", ALL, valid=valid, **FAST)
    b = explain_batch(net, x, "decoder.blocks.1", ALL, region=pred & valid, **FAST)
    for m in ALL:
        torch.testing.assert_close(a[m], b[m], atol=1e-5, rtol=0, msg=m)
    c = explain_batch(net, x, "decoder.blocks.1", ["gradcam"])
    assert not torch.allclose(a["gradcam"], c["gradcam"])


def test_no_warning_when_region_present(net, x):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explain_batch(net, x, "decoder.blocks.1", ["gradcam"], target_class=1)


class ConstModel(nn.Module):
    """Target layer with constant channels: zero conv weights, fixed biases (0, 1, 1, learned...)."""

    def __init__(self, all_constant=False):
        super().__init__()
        torch.manual_seed(3)
        self.feat = nn.Conv2d(2, 4, 3, padding=1)
        with torch.no_grad():
            if all_constant:
                self.feat.weight.zero_()
            else:
                self.feat.weight[:2].zero_()  # channels 0, 1 constant
        self.act = nn.ReLU()
        self.head = nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, x):
        return self.head(self.act(self.feat(x)))


def test_constant_activations_all_methods_finite():
    m = ConstModel(all_constant=True)
    xx = images(2, bands=2, size=8)
    region = torch.ones(2, 8, 8, dtype=torch.bool)
    out = explain_batch(m, xx, "act", ALL, target_class=1, **FAST, region=region)
    for k, v in out.items():
        assert torch.isfinite(v).all(), k
    # channel-weighted sums of constant channels are constant maps: min-max gives zeros (no NaN);
    # hirescam/xrescam/layercam weight pixels by the (non-constant) gradient, so they need not be
    for k in ["gradcam", "gradcam++", "xgradcam", "scorecam", "scorecam-pgc", "ablationcam", "ablationcam-pgc",
              "eigencam", "kpcacam", "fem", "randomcam"]:
        assert (out[k] == 0).all(), k


@pytest.mark.parametrize("name", ["scorecam", "scorecam-pgc"])
def test_scorecam_constant_channels_equal_brute_force(name):
    m = ConstModel()
    xx = images(2, bands=2, size=8)
    region = torch.zeros(2, 8, 8, dtype=torch.bool)
    region[:, 2:6, 1:5] = True
    out = explain_batch(m, xx, "act", [name], target_class=1, region=region, normalize=False)
    n = region[0].sum() if name == "scorecam" else 1  # the mean score, or pytorch-grad-cam's sum
    with torch.no_grad():
        A = m.act(m.feat(xx))
        scores = torch.zeros(2, 4)
        for b in range(2):
            for k in range(4):
                a = A[b, k]
                mask = (a - a.min()) / (a.max() - a.min() + 1e-8)
                scores[b, k] = (m(xx[b:b + 1] * mask)[0, 1] * region[b]).sum() / n
        w = torch.softmax(scores, 1)
        expected = torch.relu((w[:, :, None, None] * A).sum(1))
    torch.testing.assert_close(out[name], expected, atol=1e-5, rtol=0)


def test_binary_single_channel_model():
    m = unet(bands=1, classes=1)
    xx = images(2, bands=1)
    fg = explain_batch(m, xx, "decoder.blocks.1", ALL, target_class=1, **FAST)
    bg = explain_batch(m, xx, "decoder.blocks.1", ["gradcam", "hirescam"], target_class=0)
    for k, v in fg.items():
        assert v.shape == (2, 32, 32) and torch.isfinite(v).all(), k
    # background score is -sum(z) over the complement: its HiRes map differs from the foreground's
    assert not torch.allclose(fg["hirescam"], bg["hirescam"])
    with pytest.raises(SegxaiError, match="valid: 0, 1"):
        explain_batch(m, xx, "decoder.blocks.1", ["gradcam"], target_class=2)


def test_unknown_method_lists_valid_ones(net, x):
    with pytest.raises(SegxaiError) as e:
        explain_batch(net, x, "decoder.blocks.0", ["gradcam", "gradkam"])
    msg = str(e.value)
    assert "gradkam" in msg and all(m in msg for m in METHODS) and "\n" not in msg


def test_unknown_layer_lists_close_names(net, x):
    with pytest.raises(SegxaiError) as e:
        explain_batch(net, x, "decoder.blocks.O", ["gradcam"])
    assert "decoder.blocks.0" in str(e.value) and "\n" not in str(e.value)


def test_bad_region_shape(net, x):
    with pytest.raises(SegxaiError, match="region"):
        explain_batch(net, x, "decoder.blocks.0", ["gradcam"], region=torch.ones(2, 16, 16, dtype=torch.bool))


def test_multi_layer_is_average_of_normalised_layers(net, x):
    layers = ["decoder.blocks.0", "decoder.blocks.2", "decoder.1"]
    multi = explain_batch(net, x, layers, ALL, target_class=1, **FAST)
    single = [explain_batch(net, x, layer, ALL, target_class=1, **FAST) for layer in layers]
    for m in ALL:
        torch.testing.assert_close(multi[m], aggregate([s[m] for s in single]), atol=1e-5, rtol=0, msg=m)


def test_normalize_false_keeps_raw_scale(net, x):
    raw = explain_batch(net, x, "decoder.blocks.1", ["hirescam", "gradcam"], target_class=1, normalize=False)
    norm = explain_batch(net, x, "decoder.blocks.1", ["hirescam", "gradcam"], target_class=1)
    for m in raw:
        r = raw[m]
        assert r.min() >= 0
        lo, hi = r.flatten(1).amin(1)[:, None, None], r.flatten(1).amax(1)[:, None, None]
        torch.testing.assert_close((r - lo) / (hi - lo + 1e-7), norm[m], atol=1e-5, rtol=0)


def test_ablation_suffix_equals_full_forward(net, x):
    fast = explain_batch(net, x, "decoder.blocks.0", ["ablationcam"], target_class=1, ablation_chunk=7)
    slow = explain_batch(net, x, "decoder.blocks.0", ["ablationcam"], target_class=1, ablation_suffix=False)
    torch.testing.assert_close(fast["ablationcam"], slow["ablationcam"], atol=1e-5, rtol=0)


def test_ablation_linear_next_conv_equals_plain_suffix(net, x):
    for layer in ["decoder.blocks.0", "decoder.blocks.1"]:
        lin = explain_batch(net, x, layer, ["ablationcam"], target_class=1, ablation_chunk=5, normalize=False)
        plain = explain_batch(net, x, layer, ["ablationcam"], target_class=1, ablation_linear=False, normalize=False)
        torch.testing.assert_close(lin["ablationcam"], plain["ablationcam"], atol=1e-5, rtol=1e-4)


def test_score_chunk_does_not_change_result(net, x):
    a = explain_batch(net, x, "decoder.blocks.1", ["scorecam"], target_class=1, score_chunk=5)
    b = explain_batch(net, x, "decoder.blocks.1", ["scorecam"], target_class=1, score_chunk=64)
    torch.testing.assert_close(a["scorecam"], b["scorecam"], atol=1e-5, rtol=0)


def test_use_probs_and_explicit_region(net, x):
    region = torch.zeros(2, 32, 32, dtype=torch.bool)
    region[:, 8:16, 8:20] = True
    out = explain_batch(net, x, "decoder.blocks.2", ["gradcam", "scorecam"], target_class=0,
                        region=region, use_probs=True)
    for v in out.values():
        assert torch.isfinite(v).all() and v.max() > 0.99


def test_generic_non_smp_model():
    m = ConstModel()
    xx = images(3, bands=2, size=8)
    out = explain_batch(m, xx, ["feat", "act"], ALL, target_class=0, **FAST)
    for k, v in out.items():
        assert v.shape == (3, 8, 8) and torch.isfinite(v).all(), k


def test_inplace_relu_after_target_layer():
    """Targeting a layer followed by an in-place op (resnet bn1 -> ReLU(inplace)) must work and
    record the pre-ReLU activations."""
    m = unet()
    out = explain_batch(m, images(1), "encoder.bn1", ["gradcam", "eigencam"], target_class=1)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_autocast_bf16_cpu_close_to_fp32(net, x):
    a = explain_batch(net, x, "decoder.blocks.1", ["gradcam", "hirescam"], target_class=1)
    b = explain_batch(net, x, "decoder.blocks.1", ["gradcam", "hirescam"], target_class=1, autocast="bf16")
    for m in a:
        assert b[m].dtype == torch.float32 and torch.isfinite(b[m]).all()
        assert torch.corrcoef(torch.stack([a[m].flatten(), b[m].flatten()]))[0, 1] > 0.9


def test_bad_autocast_option(net, x):
    with pytest.raises(SegxaiError, match="autocast"):
        explain_batch(net, x, "decoder.blocks.1", ["gradcam"], autocast="fp8")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@cuda
def test_cuda_matches_cpu(monkeypatch):
    # TF32 (on by default for convolutions) rounds to 10-bit mantissas: compare full float32 arithmetic.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    m, xx = unet(), images(2)
    cpu = explain_batch(m, xx, "decoder.blocks.1", ALL, target_class=1, **FAST)
    m_gpu = unet().cuda()
    gpu = explain_batch(m_gpu, xx.cuda(), "decoder.blocks.1", ALL, target_class=1, **FAST)
    for k in ALL:
        assert gpu[k].device.type == "cuda"
        torch.testing.assert_close(gpu[k].cpu(), cpu[k], atol=2e-3, rtol=0, msg=k)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_cuda_autocast(dtype):
    m, xx = unet().cuda(), images(2).cuda()
    ref = explain_batch(m, xx, "decoder.blocks.1", ALL, target_class=1, **FAST)
    out = explain_batch(m, xx, "decoder.blocks.1", ALL, target_class=1, **FAST, autocast=dtype)
    for k in ALL:
        assert out[k].dtype == torch.float32 and torch.isfinite(out[k]).all(), k
        assert torch.corrcoef(torch.stack([ref[k].flatten(), out[k].flatten()]))[0, 1] > 0.9, k


def test_layer_with_list_output_is_a_clear_error(net, x):
    with pytest.raises(SegxaiError, match="not a feature map"):
        explain_batch(net, x, "encoder", ["gradcam"])
    assert all(not m._forward_hooks for m in net.modules())


@pytest.mark.parametrize("opts", [dict(ablation_suffix=False), dict(ablation_linear=False)], ids=["whole-model", "suffix"])
def test_ablation_does_not_rerun_dead_channels(x, opts):
    """A channel that is 0 everywhere (a dead ReLU channel) keeps y_k = y without a re-run: one ablated
    row less per image, and the same map as the fast path that does not skip it by name."""

    def rows_run(net):
        seen = []
        mod = net.encoder if opts.get("ablation_suffix") is False else net.decoder.blocks[1]
        h = mod.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
        try:
            maps = explain_batch(net, x, "decoder.blocks.0", ["ablationcam"], target_class=1, ablation_chunk=3,
                                 normalize=False, **opts)
        finally:
            h.remove()
        return sum(seen), maps["ablationcam"]

    alive, dead = unet(), unet()
    with torch.no_grad():  # channel 3 of block 0's output: relu(BN(...) - 1e4) = 0 everywhere
        dead.decoder.blocks[0].conv2[1].bias[3] = -1e4
    n_alive, _ = rows_run(alive)
    n_dead, m_dead = rows_run(dead)
    assert n_alive - n_dead == x.shape[0]
    fast = explain_batch(dead, x, "decoder.blocks.0", ["ablationcam"], target_class=1, normalize=False)
    torch.testing.assert_close(m_dead, fast["ablationcam"], atol=1e-5, rtol=1e-4)

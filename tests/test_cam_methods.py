"""What our defaults do differently from pytorch-grad-cam, and why (docs/methods.md), on fixtures.

Score-CAM uses more than one channel; Ablation-CAM keeps its sign when the region's score is
negative; Eigen-CAM's sign follows a documented rule with known answers; the notes hook reports it;
the Ablation-CAM fast path equals the plain re-run at every decoder block.
"""

from __future__ import annotations

import pytest
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn

from segxai_cli.cam import explain_batch
from segxai_cli.cam.post import minmax, resize
from segxai_cli.errors import SegxaiError
from segxai_cli.model.unet_suffix import _up2_weights, up2_conv


def unet(classes=2, head_scale=1.0, decoder=(16, 8, 8), depth=3):
    torch.manual_seed(0)
    net = smp.Unet("resnet18", encoder_weights=None, in_channels=3, classes=classes, encoder_depth=depth,
                   decoder_channels=decoder).eval()
    with torch.no_grad():
        net.segmentation_head[0].weight.mul_(head_scale)
    return net


def images(b=2, size=32, seed=1):
    return torch.randn(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def corr(a, b):
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]


# ----------------------------------------------------------------------------- Score-CAM
def test_scorecam_uses_more_than_one_channel():
    """Logits of a trained model's range (head x30) summed over a whole tile: the reference's softmax is
    one-hot (exp(entropy) = 1), the mean score's is not, and the map is not the best single channel."""
    net, x = unet(head_scale=30), images()
    region = torch.ones(2, 32, 32, dtype=torch.bool)
    notes = {}
    out = explain_batch(net, x, "decoder.blocks.1", ["scorecam", "scorecam-pgc"], target_class=1, region=region,
                        notes=notes)
    eff, eff_pgc = notes["scorecam.effective_channels"][:, 0], notes["scorecam-pgc.effective_channels"][:, 0]
    assert notes["scorecam.effective_channels"].shape == (2, 1)
    assert (eff > 2).all()  # measured 2.3, 3.3 of 8
    assert (eff_pgc < 1.01).all()  # collapsed
    acts = {}
    h = net.decoder.blocks[1].register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    with torch.no_grad():
        net(x)
    h.remove()
    best_single = [minmax(resize(torch.relu(acts["a"][:, k]), (32, 32))) for k in range(acts["a"].shape[1])]
    for b in range(2):
        closest = min((out["scorecam"][b] - s[b]).abs().max() for s in best_single)
        assert closest > 0.05  # not any single channel
        # the reference's map is one channel
        assert min((out["scorecam-pgc"][b] - s[b]).abs().max() for s in best_single) < 1e-5


def test_scorecam_temperature():
    net, x = unet(head_scale=30), images()
    notes = {}
    explain_batch(net, x, "decoder.blocks.1", ["scorecam"], target_class=1, notes=notes, score_temperature=1e-3)
    assert (notes["scorecam.effective_channels"] < 1.01).all()  # cold: one-hot again
    explain_batch(net, x, "decoder.blocks.1", ["scorecam"], target_class=1, notes=notes, score_temperature=1e3)
    assert (notes["scorecam.effective_channels"] > 7.9).all()  # hot: all 8 channels


# ----------------------------------------------------------------------------- Ablation-CAM
@pytest.mark.parametrize("layer", ["decoder.blocks.0", "decoder.blocks.2"])
def test_ablationcam_keeps_its_sign_on_a_negative_score(layer):
    """Shifting the class logit by a constant makes y negative without changing any gradient or any
    score drop: ours is unchanged and agrees with Grad-CAM; the reference's (y - y_k)/y turns around."""
    x = images()
    region = torch.zeros(2, 32, 32, dtype=torch.bool)
    region[:, 4:28, 2:20] = True
    maps = {}
    for shift in (0.0, -50.0):
        net = unet()
        with torch.no_grad():
            net.segmentation_head[0].bias[1] += shift
            y = (net(x)[:, 1] * region).sum((1, 2))
        assert (y < 0).all() == (shift < 0) and (y > 0).all() == (shift == 0)
        maps[shift] = explain_batch(net, x, layer, ["ablationcam", "ablationcam-pgc", "gradcam"], target_class=1,
                                    region=region, normalize=False)
    pos, neg = maps[0.0], maps[-50.0]
    torch.testing.assert_close(neg["ablationcam"] / neg["ablationcam"].amax((1, 2), keepdim=True),
                               pos["ablationcam"] / pos["ablationcam"].amax((1, 2), keepdim=True), atol=1e-4, rtol=0)
    torch.testing.assert_close(pos["ablationcam-pgc"], pos["ablationcam"])  # y > 0: the same method
    for b in range(2):
        ours = corr(neg["ablationcam"][b], neg["gradcam"][b])
        assert ours > 0.5
        turned = neg["ablationcam-pgc"][b]  # its map is (mostly) negative, so the ReLU leaves (almost) nothing
        assert turned.max() == 0 or corr(turned, neg["gradcam"][b]) < ours - 0.5


@pytest.mark.parametrize("probs", [False, True])
def test_ablation_fast_path_equals_plain_rerun_at_every_block(probs):
    """The shortcuts of model/unet_suffix.py (next block by linearity, skip halves once, up2
    convolutions, folded batch norm) and the score-gradient dot product / closed form at the last
    block equal re-running the decoder's own modules."""
    net, x = unet(decoder=(32, 16, 8, 8), depth=4), images(2, 32)
    for n in range(4):
        kw = dict(target_class=1, use_probs=probs, normalize=False)
        fast = explain_batch(net, x, f"decoder.blocks.{n}", ["ablationcam", "ablationcam-pgc"], ablation_chunk=5, **kw)
        plain = explain_batch(net, x, f"decoder.blocks.{n}", ["ablationcam", "ablationcam-pgc"], ablation_linear=False, **kw)
        full = explain_batch(net, x, f"decoder.blocks.{n}", ["ablationcam"], ablation_suffix=False, **kw)
        for m in fast:
            torch.testing.assert_close(fast[m], plain[m], atol=1e-5, rtol=1e-4, msg=f"block {n} {m}")
        torch.testing.assert_close(fast["ablationcam"], full["ablationcam"], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("size", [(8, 8), (5, 7)])
def test_up2_conv_is_conv_of_nearest_upsampling(size):
    gen = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 3, *size, generator=gen), torch.randn(4, 3, 3, 3, generator=gen), torch.randn(4, generator=gen)
    out = (2 * size[0], 2 * size[1])
    expected = F.conv2d(F.interpolate(x, size=out, mode="nearest"), w, b, padding=1)
    torch.testing.assert_close(up2_conv(x, _up2_weights(w), b), expected, atol=1e-5, rtol=1e-5)
    cl = up2_conv(x.contiguous(memory_format=torch.channels_last), _up2_weights(w), b)
    torch.testing.assert_close(cl, expected, atol=1e-5, rtol=1e-5)


def test_ablation_chunks_fit_the_cpu_cache(monkeypatch):
    """On a CPU the ablated suffix is memory-bound once it leaves the cache: a chunk's live tensors
    (4 × the largest per-ablation intermediate) are sized to the last-level cache, never below 1."""
    from segxai_cli.model import unet_suffix

    from segxai_cli import device

    assert device.cpu_cache_bytes() >= 2**20
    net = unet(decoder=(32, 16, 8, 8), depth=4)
    runner = unet_suffix.UnetSuffix(net, 0)
    A = torch.zeros(1, 32, 32, 32)  # block 0 feeding 64², 128², 256²: the last block's 8 × 256² floats are the largest
    monkeypatch.setattr(device, "cpu_cache_bytes", lambda: 32 * 2**20)
    assert runner.chunk_size(A) == 32 * 2**20 // (4 * 4 * 8 * 256 * 256)
    monkeypatch.setattr(device, "cpu_cache_bytes", lambda: 2**20)
    assert runner.chunk_size(A) == 1


def test_whole_model_perturbation_chunks_fit_the_cpu_cache(monkeypatch):
    """Score-CAM, RISE, occlusion and whole-model Ablation-CAM: an explicit chunk is kept; the default
    is 32 off the CPU and, on a CPU, as many 256² images as keep ~16 floats per pixel ×4 in the cache."""
    from segxai_cli import device

    x = torch.zeros(4, 3, 256, 256)
    monkeypatch.setattr(device, "cpu_cache_bytes", lambda: 32 * 2**20)
    assert device.forward_chunk(x, 7) == 7
    assert device.forward_chunk(x, None) == 32 * 2**20 // (4 * 16 * 256 * 256 * 4) == 2
    assert device.forward_chunk(torch.zeros(1, 3, 32, 32), None) == 32  # never above the GPU default
    assert device.cache_chunk(torch.device("cuda"), 2**40, 32) == 32
    monkeypatch.setattr(device, "cpu_cache_bytes", lambda: 1)
    assert device.forward_chunk(x, None) == 1


def test_rise_and_scorecam_do_not_depend_on_the_chunk():
    net, x = unet(), images(2, 32)
    kw = dict(target_class=1, rise_masks=40, normalize=False)
    a = explain_batch(net, x, "decoder.blocks.1", ["scorecam", "rise", "occlusion"], score_chunk=3, perturb_chunk=2, **kw)
    b = explain_batch(net, x, "decoder.blocks.1", ["scorecam", "rise", "occlusion"], **kw)
    for m in a:  # float summation order only: RISE's map is a difference of sums (values ~15 here)
        torch.testing.assert_close(a[m], b[m], atol=1e-5 * float(b[m].abs().max()), rtol=1e-4, msg=m)


# ----------------------------------------------------------------------------- Eigen-CAM sign
class Probe(nn.Module):
    """x is the target layer's activations; one 1x1 head: class 1's logit = w · x."""

    def __init__(self, w):
        super().__init__()
        self.feat = nn.Identity()
        self.head = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[1, :, 0, 0] = torch.as_tensor(w)

    def forward(self, x):
        return self.head(self.feat(x))


def blob_activations(direction=(1.0, 2.0, -1.5)):
    """A blob at rows 2-4, cols 3-6 along ``direction`` over a large, weaker background spread."""
    gen = torch.Generator().manual_seed(4)
    blob = torch.zeros(1, 1, 8, 8)
    blob[..., 2:5, 3:7] = 1.0
    d = torch.tensor(direction).view(1, 3, 1, 1)
    return blob * d + 0.05 * torch.randn(1, 3, 8, 8, generator=gen), blob[0, 0] > 0


@pytest.mark.parametrize("raises", [True, False])
def test_eigencam_sign_follows_the_score(raises):
    """Known answer: the blob raises class 1's score when the head weights point along it, lowers it
    otherwise; the map must be high on the blob exactly in the first case. The region is the whole
    tile (no contrast), and Seg-Eigen-CAM's extent rule gives the same sign in both cases."""
    a, blob = blob_activations()
    d = torch.tensor([1.0, 2.0, -1.5])
    model = Probe(d if raises else -d)
    full = torch.ones(1, 8, 8, dtype=torch.bool)
    notes = {}
    m = explain_batch(model, a, "feat", ["eigencam", "eigengradcam", "kpcacam", "segeigencam"], target_class=1,
                      region=full, normalize=False, notes=notes)
    for name in ("eigencam", "kpcacam"):
        inside, outside = m[name][0][blob].mean(), m[name][0][~blob].mean()
        assert (inside > outside) == raises, name
        assert notes[f"{name}.sign_rule"].item() == 0  # decided by Grad-CAM agreement
        assert notes[f"{name}.gradcam_corr"].item() > 0.9
    assert notes["eigencam.extent_sign"].item() == (1 if raises else -1)  # the extent rule is right once only
    # Seg-Eigen-CAM keeps its paper's extent rule: blob positive either way (|g| ⊙ A)
    assert m["segeigencam"][0][blob].mean() > m["segeigencam"][0][~blob].mean()


def test_eigencam_sign_invariant_to_negating_the_features():
    """-A with -W is the same network function: the map must not change (the raw SVD sign would)."""
    a, _ = blob_activations()
    d = torch.tensor([1.0, 2.0, -1.5])
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[:, 1:6, 2:8] = True
    one = explain_batch(Probe(d), a, "feat", ["eigencam", "kpcacam", "eigengradcam"], target_class=1, region=region)
    two = explain_batch(Probe(-d), -a, "feat", ["eigencam", "kpcacam", "eigengradcam"], target_class=1, region=region)
    for m in one:
        torch.testing.assert_close(one[m], two[m], atol=1e-5, rtol=0, msg=m)


def test_eigen_sign_rules_and_notes():
    net, x = unet(), images()
    rules = {}
    for rule in ("gradcam", "region", "extent"):
        notes = {}
        rules[rule] = explain_batch(net, x, ["decoder.blocks.0", "decoder.blocks.2"], ["eigencam"], target_class=1,
                                    eigen_sign=rule, notes=notes, batch_chunk=1)["eigencam"]
        assert set(notes) == {f"eigencam.{k}" for k in ("sign_rule", "gradcam_corr", "region_corr", "extent_sign")}
        assert all(v.shape == (2, 2) for v in notes.values())  # (images, layers), chunks concatenated
        expected_rule = {"gradcam": 0, "region": 1, "extent": 2}[rule]
        assert (notes["eigencam.sign_rule"] == expected_rule).all()
        if rule == "gradcam":
            assert (notes["eigencam.gradcam_corr"] > 0).all()
        if rule == "extent":
            assert (notes["eigencam.extent_sign"] == 1).all()
    with pytest.raises(SegxaiError, match="eigen_sign"):
        explain_batch(net, x, "decoder.blocks.0", ["eigencam"], eigen_sign="coin")


def test_eigencam_empty_gradients_fall_back_to_region_then_extent():
    a, blob = blob_activations()
    model = Probe([0.0, 0.0, 0.0])  # no gradient at all: Grad-CAM is flat
    notes = {}
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[0, blob] = True
    m = explain_batch(model, a, "feat", ["eigencam"], target_class=1, region=region, notes=notes, normalize=False)
    assert notes["eigencam.sign_rule"].item() == 1 and m["eigencam"][0][blob].mean() > 0
    explain_batch(model, a, "feat", ["eigencam"], target_class=1, region=torch.ones_like(region), notes=notes)
    assert notes["eigencam.sign_rule"].item() == 2 and notes["eigencam.extent_sign"].item() == 1


# ----------------------------------------------------------------------------- baselines and others
def test_randomcam_reproducible_and_batch_independent():
    net, x = unet(), images(3)
    a = explain_batch(net, x, "decoder.blocks.1", ["randomcam"])["randomcam"]
    b = explain_batch(net, x[1:2], "decoder.blocks.1", ["randomcam"])["randomcam"]
    c = explain_batch(net, x, "decoder.blocks.1", ["randomcam"], random_seed=1)["randomcam"]
    torch.testing.assert_close(a[1:2], b)
    assert (a - c).abs().max() > 0.05


def test_fullgrad_ignores_the_layer():
    net, x = unet(), images()
    one = explain_batch(net, x, "decoder.blocks.0", ["fullgrad"])["fullgrad"]
    two = explain_batch(net, x, ["encoder.2", "decoder.blocks.2"], ["fullgrad"])["fullgrad"]
    torch.testing.assert_close(one, two)

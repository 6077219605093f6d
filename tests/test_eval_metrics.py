"""Every evaluation metric against hand-computed values, plus one batch through a fake model.

The fake model is a 1x1 convolution with set weights: a binary sigmoid model whose logit is
``z = 4 x - 2``. On a 4x4 one-band image with x = 1 in the two left columns and 0 elsewhere it
predicts exactly those columns with p = sigmoid(2); the fill (0 = band mean) gives sigmoid(-2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.batch import TileTensors, evaluate_batch, randomized_copy
from segxai_cli.evaluation.config import StudyConfig

sig = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731


class Fake(nn.Module):
    """logits = w * x + b (1x1 conv, one output channel = binary sigmoid model)."""

    def __init__(self, w: float = 4.0, b: float = -2.0):
        super().__init__()
        self.head = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.head.weight.fill_(w)
            self.head.bias.fill_(b)

    def forward(self, x):
        return self.head(x)


def _image():
    x = torch.zeros(1, 1, 4, 4)
    x[..., :2] = 1.0
    return x


# Saliency per column: 1.0, 0.6, 0.2, 0.0 (the same in every row).
SAL = torch.tensor([1.0, 0.6, 0.2, 0.0]).expand(4, 4)[None].clone()


# ----------------------------------------------------------------------------- entropy
def test_entropy_L_classes_normalised():
    p = torch.tensor([0.9, 0.05, 0.05])
    logits = p.log().view(1, 3, 1, 1)
    expected = -(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)) / math.log(3)
    assert M.pixel_entropy(logits).item() == pytest.approx(expected, rel=1e-5)
    # uniform over L classes -> exactly 1 for any L; one-hot -> 0 (no NaN from 0 log 0)
    for L in (2, 3, 7):
        assert M.pixel_entropy(torch.zeros(1, L, 2, 2)).flatten().tolist() == pytest.approx([1.0] * 4, rel=1e-6)
    sure = torch.tensor([200.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert M.pixel_entropy(sure).item() == pytest.approx(0.0, abs=1e-6)


def test_entropy_binary_sigmoid_is_bernoulli_over_log2():
    z = torch.tensor([0.0, 2.0, -2.0, 60.0]).view(1, 1, 1, 4)
    p = sig(2.0)
    hb = -(p * math.log(p) + (1 - p) * math.log(1 - p)) / math.log(2)
    assert M.pixel_entropy(z).flatten().tolist() == pytest.approx([1.0, hb, hb, 0.0], abs=1e-6)
    # the binary model and the equivalent 2-class softmax model (logits 0, z) agree
    two = torch.cat([torch.zeros_like(z), z], 1)
    assert torch.allclose(M.pixel_entropy(two), M.pixel_entropy(z), atol=1e-6)


def test_mean_entropy_and_confidence_over_target_only():
    z = torch.tensor([[2.0, -2.0], [0.0, 0.0]]).view(1, 1, 2, 2)
    T = torch.tensor([[True, True], [False, False]])[None]
    assert M.confidence(z, T, 1).item() == pytest.approx((sig(2) + sig(-2)) / 2)
    assert M.confidence(z, T, 0).item() == pytest.approx((sig(-2) + sig(2)) / 2)
    e = M.mean_entropy(z, T).item()
    assert e == pytest.approx(M.pixel_entropy(z)[0, 0, 0].item(), rel=1e-6)
    # empty target -> NaN (undefined), never 0
    assert math.isnan(M.confidence(z, torch.zeros_like(T), 1).item())
    assert math.isnan(M.mean_entropy(z, torch.zeros_like(T)).item())


def test_relative_drop_and_increase():
    assert M.relative_drop(torch.tensor([0.8]), torch.tensor([0.2])).item() == pytest.approx(0.75)
    assert M.relative_increase(torch.tensor([0.1]), torch.tensor([0.3])).item() == pytest.approx(2.0)
    assert math.isnan(M.relative_drop(torch.tensor([0.0]), torch.tensor([0.2])).item())


# ----------------------------------------------------------------------------- overlap
def test_iou_iou_change_dice():
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, :2, :2] = True  # 4 px
    pred = torch.zeros_like(gt)
    pred[0, :2, :3] = True  # 6 px, 4 overlap
    assert M.iou(pred, gt).item() == pytest.approx(4 / 6)
    assert M.dice(pred, gt).item() == pytest.approx(2 * 4 / 10)
    reduced = torch.zeros_like(gt)
    reduced[0, 0, :2] = True  # 2 px inside gt
    assert M.iou(reduced, gt).item() == pytest.approx(2 / 4)
    assert M.iou_change(M.iou(reduced, gt), M.iou(pred, gt)).item() == pytest.approx(0.5 - 4 / 6)
    # region restricts the counted pixels
    region = torch.ones_like(gt)
    region[0, :, 2] = False
    assert M.iou(pred, gt, region).item() == pytest.approx(1.0)
    # both empty -> NaN; empty gt with a prediction -> 0
    empty = torch.zeros_like(gt)
    assert math.isnan(M.iou(empty, empty).item())
    assert M.iou(pred, empty).item() == 0.0
    assert math.isnan(M.dice(empty, empty).item())


def test_dice_explained_and_saliency_ratio():
    pred = torch.zeros(1, 4, 4, dtype=torch.bool)
    pred[0, :, :2] = True  # 8 px
    kept = torch.zeros_like(pred)
    kept[0, :, :1] = True  # 4 px
    assert M.dice_explained(pred, kept).item() == pytest.approx(2 * 4 / 12)
    phi = SAL >= 0.5  # 8 px
    assert M.saliency_ratio(phi, pred).item() == pytest.approx(1.0)
    assert M.saliency_ratio(SAL >= 0.1, pred).item() == pytest.approx(12 / 8)
    assert math.isnan(M.saliency_ratio(phi, torch.zeros_like(pred)).item())


def test_pps_ips():
    P = torch.tensor([0.8, 0.6, 0.1, 0.0]).view(1, 1, 4)
    Pp = torch.tensor([0.4, 0.9, 0.1, 0.5]).view(1, 1, 4)
    assert M.pps(P, Pp).item() == pytest.approx((0.4 + 0.6 + 0.1 + 0.0) / 1.5)
    assert M.pps(P, P).item() == pytest.approx(1.0)
    assert M.ips(SAL).item() == pytest.approx((1 + 0.6 + 0.2 + 0) / 4)
    region = torch.zeros(1, 4, 4, dtype=torch.bool)
    region[0, :, 0] = True
    assert M.ips(SAL, region).item() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- curves
def test_saliency_rank_and_curve_masks():
    rank, n = M.saliency_rank(SAL)
    assert n.tolist() == [16]
    # stable ties: column 0 first (raster order), then column 1, ...
    assert rank[0, :, 0].tolist() == [0, 1, 2, 3] and rank[0, :, 1].tolist() == [4, 5, 6, 7]
    keep = M.curve_keep(rank, n, 0.25, "deletion")
    assert (~keep[0, :, 0]).all() and keep[0, :, 1:].all()
    ins = M.curve_keep(rank, n, 0.5, "insertion")
    assert ins[0, :, :2].all() and not ins[0, :, 2:].any()
    assert M.curve_keep(rank, n, 0.0, "deletion").all() and not M.curve_keep(rank, n, 0.0, "insertion").any()
    # pixels outside the region are never among the top ones
    region = torch.ones(1, 4, 4, dtype=torch.bool)
    region[0, 0, 0] = False
    rank, n = M.saliency_rank(SAL, region)
    assert n.tolist() == [15] and rank[0, 0, 0].item() == 15


def test_auc_trapezoid():
    assert M.auc(torch.tensor([1.0, 0.5, 0.0])).item() == pytest.approx(0.5)
    assert M.auc(torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0])).item() == pytest.approx(1.0)
    v = torch.tensor([0.9, 0.5, 0.1, 0.1, 0.1])
    assert M.auc(v).item() == pytest.approx(0.25 * (0.9 / 2 + 0.5 + 0.1 + 0.1 + 0.1 / 2))


# ----------------------------------------------------------------------------- sanity
def test_spearman_with_ties():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 2, 2)
    assert M.spearman(a, a).item() == pytest.approx(1.0)
    assert M.spearman(a, -a).item() == pytest.approx(-1.0)
    x = torch.tensor([1.0, 1.0, 2.0]).view(1, 1, 3)
    y = torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3)
    assert M.rankdata(x.flatten()).tolist() == [1.5, 1.5, 3.0]
    assert M.spearman(x, y).item() == pytest.approx(1.5 / math.sqrt(3))
    assert math.isnan(M.spearman(torch.zeros(1, 2, 2), a).item())


def test_randomized_copy_is_seeded_and_different(tiny_model):
    model, _ = tiny_model
    r1, r2 = randomized_copy(model, seed=3), randomized_copy(model, seed=3)
    r3 = randomized_copy(model, seed=4)
    w = lambda m: torch.cat([p.flatten() for p in m.parameters()])  # noqa: E731
    assert torch.equal(w(r1), w(r2))
    assert not torch.equal(w(r1), w(r3)) and not torch.equal(w(r1), w(model))


# ----------------------------------------------------------------------------- one batch, end to end
def _run_fake(thresholds=(0.1, 0.5), steps=4, target=None, image=None):
    model = Fake().eval()
    x = _image() if image is None else image
    region = torch.ones(1, 4, 4, dtype=torch.bool)
    cfg = StudyConfig(methods=["gradcam"], layers=["head"], thresholds=thresholds, curve_steps=steps, chunk=5, budgets=[])
    counter = [0, 0]
    rows = evaluate_batch(model, TileTensors(x, region, target), cfg, 1, counter=counter,
                          maps={"head": {"gradcam": SAL}})[0]
    return {(r["threshold"], r["mode"]): r for r in rows}, counter


def test_fake_model_batch_hand_computed():
    rows, n_fwd = _run_fake()
    hi, lo = sig(2.0), sig(-2.0)
    h = -(hi * math.log(hi) + lo * math.log(lo)) / math.log(2)
    m1 = rows[(0.5, "M1")]  # the two salient (= target) columns removed -> x = 0 everywhere
    assert m1["target_source"] == "prediction" and not m1["empty_target"]
    assert m1["confidence_full"] == pytest.approx(hi, rel=1e-5)
    assert m1["confidence"] == pytest.approx(lo, rel=1e-5)
    assert m1["confidence_drop"] == pytest.approx((hi - lo) / hi, rel=1e-5)
    assert m1["entropy_full"] == pytest.approx(h, rel=1e-5)
    assert m1["entropy"] == pytest.approx(h, rel=1e-5) and m1["entropy_increase"] == pytest.approx(0, abs=1e-5)
    assert m1["iou_full"] == 1.0 and m1["iou"] == 0.0 and m1["iou_change"] == -1.0
    assert m1["kept_fraction"] == pytest.approx(0.5)
    for mode in ("M2", "M3"):  # keeping Phi keeps everything that is not already the fill
        r = rows[(0.5, mode)]
        assert r["confidence"] == pytest.approx(hi, rel=1e-5) and r["confidence_drop"] == pytest.approx(0, abs=1e-6)
        assert r["iou_change"] == 0.0
    # mode-independent columns repeat in each mode row
    assert rows[(0.5, "M1")]["dice_explained"] == 1.0 == rows[(0.5, "M3")]["dice_explained"]
    assert rows[(0.5, "M1")]["saliency_ratio"] == pytest.approx(1.0)
    assert rows[(0.1, "M1")]["saliency_ratio"] == pytest.approx(1.5)
    assert m1["pps"] == pytest.approx((hi + sig(4 * 0.6 - 2) + 2 * lo) / 2, rel=1e-5)
    assert m1["ips"] == pytest.approx(0.45)
    # deletion: [full, col0 gone, cols 0-1 gone, ..., all fill]; insertion the reverse
    dele = [hi, 0.5, lo, lo, lo]
    ins = [lo, 0.5, hi, hi, hi]
    trap = lambda v: sum((v[i] + v[i + 1]) / 2 * 0.25 for i in range(4))  # noqa: E731
    assert m1["deletion_auc"] == pytest.approx(trap(dele), rel=1e-5)
    assert m1["insertion_auc"] == pytest.approx(trap(ins), rel=1e-5)
    assert math.isnan(m1["sanity_spearman"])
    # forward count: full + fill, then per method 2 thresholds x 3 modes + pps + 2 x 3 curve steps = 13
    # reduced inputs, of which 6 are identical to another one and run once: M3 == M2 at both
    # thresholds (T ⊆ Phi), deletion 50 % == M1@0.5, deletion 75 % == M1@0.1, insertion 50 % ==
    # M2@0.5, insertion 75 % == M2@0.1. The values above prove the copies are right.
    assert n_fwd == [2 + 7, 6]


def test_fake_model_ground_truth_and_empty_target():
    gt = torch.zeros(1, 4, 4, dtype=torch.bool)
    gt[0, :, 0] = True  # the model over-predicts column 1
    rows, _ = _run_fake(target=gt, steps=0)
    r = rows[(0.5, "M1")]
    assert r["target_source"] == "ground_truth"
    assert r["iou_full"] == pytest.approx(0.5) and r["iou"] == 0.0 and r["iou_change"] == pytest.approx(-0.5)
    assert math.isnan(r["deletion_auc"])
    # empty target: confidence/entropy undefined (NaN) and the row is marked
    rows, _ = _run_fake(target=torch.zeros_like(gt), steps=0)
    r = rows[(0.5, "M1")]
    assert r["empty_target"] and r["n_target"] == 0
    assert math.isnan(r["confidence"]) and math.isnan(r["confidence_drop"]) and math.isnan(r["entropy"])
    # IoU with an empty ground truth is still defined (0) when something is predicted
    assert r["iou_full"] == 0.0


def test_multiclass_fake_model_entropy():
    class Fake3(nn.Module):
        def forward(self, x):  # logits (0, 2x, x): class 1 wins where x > 0
            return torch.cat([torch.zeros_like(x), 2 * x, x], 1)

    x = _image()
    cfg = StudyConfig(methods=["gradcam"], layers=["l"], thresholds=[0.5], curve_steps=0)
    rows = evaluate_batch(Fake3(), TileTensors(x, torch.ones(1, 4, 4, dtype=torch.bool)), cfg, 1,
                          maps={"l": {"gradcam": SAL}})[0]
    p = np.exp([0.0, 2.0, 1.0]) / np.exp([0.0, 2.0, 1.0]).sum()
    h = float(-(p * np.log(p)).sum() / np.log(3))
    r = rows[0]
    assert r["confidence_full"] == pytest.approx(p[1], rel=1e-5)
    assert r["entropy_full"] == pytest.approx(h, rel=1e-5)
    # M1 removes the target: uniform softmax -> entropy 1, p_1 = 1/3, prediction gone
    assert r["confidence"] == pytest.approx(1 / 3, rel=1e-5)
    assert r["entropy"] == pytest.approx(1.0, rel=1e-5)


def test_rows_report_the_methods_notes(tiny_model):
    """Eigen-CAM's sign rule and Score-CAM's effective channels reach the tidy rows, per tile."""
    model, _ = tiny_model
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cfg = StudyConfig(methods=["eigencam", "scorecam", "gradcam"], layers=["decoder.blocks.2"], thresholds=(0.5,),
                      modes=["M1"], curve_steps=0, chunk=8)
    per_tile = evaluate_batch(model, TileTensors(x, torch.ones(2, 32, 32, dtype=torch.bool)), cfg, 1)
    for rows in per_tile:
        by = {r["method"]: r for r in rows}
        assert by["eigencam"]["sign_rule"] in (0.0, 1.0, 2.0) and -1 <= by["eigencam"]["sign_corr"] <= 1
        assert 1 <= by["scorecam"]["effective_channels"] <= 8 and math.isnan(by["scorecam"]["sign_rule"])
        assert all(math.isnan(by["gradcam"][k]) for k in ("sign_rule", "sign_corr", "effective_channels"))

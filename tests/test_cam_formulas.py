"""Every CAM formula against hand-computed values / independent numpy loops on tiny tensors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from segxai_cli.cam import explain_batch, predict_region, target_scores
from segxai_cli.cam.registry import method_fn, names
from segxai_cli.cam.methods.eigencam import eigencam, first_component, orient
from segxai_cli.cam.post import aggregate, minmax, postprocess

# Two channels on a 2 x 2 grid; the expected maps below are worked out by hand.
A = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [1.0, 0.0]]]])
G = torch.tensor([[[[1.0, 0.0], [-1.0, 2.0]], [[0.5, 0.5], [0.5, 0.5]]]])


def close(a, b, tol=1e-5):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), atol=tol, rtol=0)


def test_gradcam_by_hand():
    # w = mean(g) = (0.5, 0.5) -> 0.5 * A0 + 0.5 * A1
    close(method_fn("gradcam")(A, G)[0], [[0.5, 1.5], [2.0, 2.0]])


def test_hirescam_by_hand():
    # sum_k g*A: ch0 [[1,0],[-3,8]] + ch1 [[0,.5],[.5,0]]
    close(method_fn("hirescam")(A, G)[0], [[1.0, 0.5], [-2.5, 8.0]])


def test_layercam_by_hand():
    # relu(g)*A: ch0 [[1,0],[0,8]] + ch1 [[0,.5],[.5,0]]
    close(method_fn("layercam")(A, G)[0], [[1.0, 0.5], [0.5, 8.0]])


def test_xgradcam_by_hand():
    # S = (10, 2); w0 = (1 + 0 - 3 + 8) / 10 = 0.6; w1 = (0 + .5 + .5 + 0) / 2 = 0.5
    close(method_fn("xgradcam")(A, G)[0], [[0.6, 1.7], [2.3, 2.4]])


def test_gradcampp_by_hand():
    # ch0 (S=10): g=1 -> alpha 1/(2+10)=1/12; g=2 -> 4/(8+80)=1/22; g=-1 -> relu kills it; g=0 -> 0
    #   w0 = 1/12 + 2/22.  ch1 (S=2): g=.5 -> .25/(.5+.25)=1/3, relu(g)*alpha=1/6, 4 px -> w1 = 2/3
    w0, w1 = 1 / 12 + 2 / 22, 2 / 3
    expected = w0 * A[0, 0].numpy() + w1 * A[0, 1].numpy()
    close(method_fn("gradcam++")(A, G)[0], expected)


def test_gradcampp_zero_gradient_gives_zero_alpha():
    # S*g^3 makes the denominator vanish only through eps; where g == 0 alpha must be 0, not 0/eps
    a = torch.ones(1, 1, 2, 2)
    g = torch.zeros(1, 1, 2, 2)
    out = method_fn("gradcam++")(a, g)
    assert torch.isfinite(out).all() and (out == 0).all()


def test_xrescam_avg_and_max_by_hand():
    a = torch.tensor([[[[1.0, 2, 3, 4], [5, 6, 7, 8]]]])
    g = torch.tensor([[[[1.0, 3, 0, 0], [-1, 1, 2, 6]]]])
    # 2x2 windows: mean 1 and 2 -> [[1,1,2,2],[1,1,2,2]] * A
    close(method_fn("xrescam")(a, g)[0], [[1, 2, 6, 8], [5, 6, 14, 16]])
    # max 3 and 6
    close(method_fn("xrescam")(a, g, xres_mode="max")[0], [[3, 6, 18, 24], [15, 18, 42, 48]])
    # window 1 is hirescam
    close(method_fn("xrescam")(a, g, xres_pool=1)[0], method_fn("hirescam")(a, g)[0])


def test_xrescam_odd_size_partial_windows():
    a = torch.ones(1, 1, 3, 3)
    g = torch.arange(9.0).view(1, 1, 3, 3)
    # windows {0,1,3,4}->2, {2,5}->3.5, {6,7}->6.5, {8}->8, nearest-upsampled and cropped
    close(method_fn("xrescam")(a, g)[0], [[2, 2, 3.5], [2, 2, 3.5], [6.5, 6.5, 8]])


def _np_reference(name, a, g):
    """Independent per-channel loops in numpy (float64)."""
    a, g = a.double().numpy()[0], g.double().numpy()[0]
    K = a.shape[0]
    out = np.zeros(a.shape[1:])
    for k in range(K):
        S = a[k].sum()
        if name == "gradcam":
            out += g[k].mean() * a[k]
        elif name == "gradcam++":
            alpha = np.zeros_like(g[k])
            nz = g[k] != 0
            alpha[nz] = g[k][nz] ** 2 / (2 * g[k][nz] ** 2 + S * g[k][nz] ** 3 + 1e-6)
            out += (np.maximum(g[k], 0) * alpha).sum() * a[k]
        elif name == "xgradcam":
            out += (g[k] * a[k]).sum() / (S + 1e-7) * a[k]
        elif name == "hirescam":
            out += g[k] * a[k]
        elif name == "layercam":
            out += np.maximum(g[k], 0) * a[k]
        elif name == "xrescam":
            h, w = g[k].shape
            gp = np.zeros_like(g[k])
            for i in range(0, h, 2):
                for j in range(0, w, 2):
                    gp[i:i + 2, j:j + 2] = g[k][i:i + 2, j:j + 2].mean()
            out += gp * a[k]
    return out


@pytest.mark.parametrize("name", ["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam", "xrescam"])
def test_gradient_formulas_match_numpy_loops(name):
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(1, 5, 6, 4, generator=gen) * 3
    g = torch.randn(1, 5, 6, 4, generator=gen)
    close(method_fn(name)(a, g)[0], _np_reference(name, a, g), tol=1e-4)


def test_gradient_methods_are_batched_per_image():
    gen = torch.Generator().manual_seed(2)
    a, g = torch.rand(3, 4, 5, 5, generator=gen), torch.randn(3, 4, 5, 5, generator=gen)
    for name, fn in ((n, method_fn(n)) for n in names("gradient")):
        full = fn(a, g)
        for b in range(3):
            close(full[b], fn(a[b:b + 1], g[b:b + 1])[0], tol=1e-6)


# ----------------------------------------------------------------------------- targets
def test_predict_region_and_scores_by_hand():
    z = torch.tensor([[[[2.0, -1.0]], [[1.0, 3.0]]]])  # (1, 2 classes, 1, 2)
    r1 = predict_region(z, 1)
    assert r1.tolist() == [[[False, True]]]
    assert target_scores(z, r1, 1).tolist() == [3.0]
    assert target_scores(z, torch.ones_like(r1), 0).tolist() == [1.0]  # 2 + (-1)
    p = torch.softmax(z, 1)[0, 1, 0, 1]
    close(target_scores(z, r1, 1, use_probs=True), [float(p)])


def test_binary_region_and_scores_by_hand():
    z = torch.tensor([[[[2.0, -1.0, 0.5]]]])  # one channel: sigmoid > .5 <=> z > 0
    fg = predict_region(z, 1)
    assert fg.tolist() == [[[True, False, True]]]
    assert predict_region(z, 0).tolist() == [[[False, True, False]]]
    assert target_scores(z, fg, 1).tolist() == [2.5]
    assert target_scores(z, ~fg, 0).tolist() == [1.0]  # background logit is -z
    close(target_scores(z, fg, 1, use_probs=True), [1 / (1 + np.exp(-2)) + 1 / (1 + np.exp(-0.5))])


# ----------------------------------------------------------------------------- perturbation, via a hand-built model
class Linear1x1(nn.Module):
    """x -> feat (identity, the target layer) -> 1x1 conv to 2 classes; scores are linear in x."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Identity()
        self.head = nn.Conv2d(2, 2, 1)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.5]]).view(2, 2, 1, 1))
            self.head.bias.copy_(torch.tensor([0.0, 0.1]))

    def forward(self, x):
        return self.head(self.feat(x))


def _np_logits(x):  # x (2, h, w) -> class-1 logit map
    return 2.0 * x[0] + 0.5 * x[1] + 0.1


@pytest.mark.parametrize("name,reduce", [("scorecam", "mean"), ("scorecam-pgc", "sum")])
def test_scorecam_by_numpy(name, reduce):
    x = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]], [[1.0, 0.0], [2.0, 2.0]]]])
    region = torch.tensor([[[True, True], [False, True]]])
    out = explain_batch(Linear1x1(), x, "feat", [name], target_class=1, region=region, normalize=False)
    xn, rn = x.numpy()[0], region.numpy()[0]
    scores = []
    for k in range(2):
        m = (xn[k] - xn[k].min()) / (xn[k].max() - xn[k].min() + 1e-8)  # A = x, same size: no resize
        s = (_np_logits(xn * m) * rn).sum()
        scores.append(s / rn.sum() if reduce == "mean" else s)
    w = np.exp(scores) / np.exp(scores).sum()
    expected = np.maximum((w[:, None, None] * xn).sum(0), 0)
    close(out[name][0], expected, tol=1e-4)


@pytest.mark.parametrize("name", ["ablationcam", "ablationcam-pgc"])
@pytest.mark.parametrize("bias", [0.1, -30.0])  # y > 0, y < 0
def test_ablationcam_by_numpy(name, bias):
    x = torch.tensor([[[[1.0, 2.0], [0.0, 3.0]], [[1.0, 0.0], [2.0, 2.0]]]])
    region = torch.tensor([[[True, True], [False, True]]])
    model = Linear1x1()
    with torch.no_grad():
        model.head.bias[1] = bias
    out = explain_batch(model, x, "feat", [name], target_class=1, region=region, normalize=False)
    xn, rn = x.numpy()[0], region.numpy()[0]
    logits = lambda a: _np_logits(a) - 0.1 + bias  # noqa: E731
    y = (logits(xn) * rn).sum()
    assert (y > 0) == (bias > 0)
    w = []
    for k in range(2):
        xa = xn.copy()
        xa[k] = 0
        w.append((y - (logits(xa) * rn).sum()) / (abs(y) if name == "ablationcam" else y))
    expected = np.maximum((np.array(w)[:, None, None] * xn).sum(0), 0)
    close(out[name][0], expected, tol=1e-4)


# ----------------------------------------------------------------------------- eigen
def _np_eigen(a):
    X = a.reshape(a.shape[0], -1).T.astype(np.float64)
    X = X - X.mean(0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    return (X @ vt[0]).reshape(a.shape[1:])


def test_eigen_first_component_matches_numpy_svd_up_to_sign():
    gen = torch.Generator().manual_seed(3)
    base = torch.rand(1, 1, 7, 5, generator=gen)
    a = base * torch.tensor([3.0, -2.0, 1.0, 0.5]).view(1, 4, 1, 1) + 0.05 * torch.randn(1, 4, 7, 5, generator=gen)
    ours = first_component(a)[0].numpy()
    ref = _np_eigen(a[0].numpy())
    sign = np.sign((ours * ref).sum())
    close(ours, sign * ref, tol=1e-4)


def test_eigen_sign_follows_region():
    gen = torch.Generator().manual_seed(4)
    region = torch.zeros(1, 8, 8, dtype=torch.bool)
    region[:, 2:5, 3:7] = True
    pattern = region.float()[:, None] + 0.1 * torch.rand(1, 1, 8, 8, generator=gen)
    a = pattern * torch.tensor([1.0, 2.0, -1.5]).view(1, 3, 1, 1)
    m_pos, m_neg = eigencam(a, region), eigencam(-a, region)
    close(m_pos, m_neg, tol=1e-5)  # A -> -A flips the raw SVD sign; orientation undoes it
    assert (m_pos[region] .mean() > m_pos[~region].mean())
    # an inverted region flips the map
    close(eigencam(a, ~region), -m_pos, tol=1e-5)


def test_eigen_sign_fallback_without_region_contrast():
    proj = torch.tensor([[[-3.0, 1.0], [0.5, 0.0]]])
    full = torch.ones(1, 2, 2, dtype=torch.bool)  # no contrast: |min| > |max| rule flips it
    close(orient(proj, full), -proj)


# ----------------------------------------------------------------------------- post-processing
def test_postprocess_matches_cv2_resize_then_minmax():
    gen = torch.Generator().manual_seed(5)
    cam = torch.randn(2, 5, 7, generator=gen)
    out = postprocess(cam, (20, 14))
    for b in range(2):
        r = cv2.resize(np.maximum(cam[b].numpy(), 0), (14, 20), interpolation=cv2.INTER_LINEAR)
        r = (r - r.min()) / (r.max() - r.min() + 1e-7)
        close(out[b], r, tol=1e-5)


def test_postprocess_unnormalised_keeps_scale():
    cam = torch.tensor([[[-1.0, 4.0], [2.0, 0.0]]])
    close(postprocess(cam, (2, 2), normalize=False), [[[0.0, 4.0], [2.0, 0.0]]])


def test_minmax_constant_is_zero_not_nan():
    out = minmax(torch.full((1, 3, 3), 5.0))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_aggregate_average_then_minmax():
    m1 = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]])
    m2 = torch.tensor([[[0.0, 0.0], [1.0, 0.5]]])
    # mean [[0, .5], [.75, .5]] -> / .75
    close(aggregate([m1, m2]), [[[0.0, 2 / 3], [1.0, 2 / 3]]], tol=1e-6)
    close(aggregate([m1, m2], normalize=False), [[[0.0, 0.5], [0.75, 0.5]]])

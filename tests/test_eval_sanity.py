"""The parameter-randomisation sanity check: groups, cascade, similarity measures, verdicts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.sanity import Group, Randomizer, randomization_groups, similarities
from segxai_cli.evaluation.similarity import hog, hog_similarity, ssim
from segxai_cli.evaluation.summary import sanity_verdicts, summarize_sanity


class Quadrant(nn.Module):
    """A learned 20 x 20 map; re-initialisation replaces it by uniform noise."""

    def __init__(self, init: torch.Tensor):
        super().__init__()
        self.p = nn.Parameter(init.clone())

    def reset_parameters(self):
        with torch.no_grad():
            self.p.uniform_(0.0, 1.0)


class Quadrants(nn.Module):
    """A "model" whose map is four learned quadrants: randomising a group replaces one by noise."""

    def __init__(self, pattern: torch.Tensor):
        super().__init__()
        self.q = nn.ModuleList(Quadrant(pattern[r:r + 20, c:c + 20]) for r in (0, 20) for c in (0, 20))

    def forward(self, x):
        top = torch.cat([self.q[0].p, self.q[1].p], 1)
        bottom = torch.cat([self.q[2].p, self.q[3].p], 1)
        return torch.cat([top, bottom], 0)[None].expand(x.shape[0], -1, -1)


def _norm(m):
    lo, hi = m.amin((1, 2), keepdim=True), m.amax((1, 2), keepdim=True)
    return (m - lo) / (hi - lo)


def test_cascade_changes_the_maps_monotonically():
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 40), indexing="ij")
    pattern = torch.exp(-((xx - 0.4) ** 2 + (yy - 0.6) ** 2) / 0.1) + 0.3 * xx  # smooth, like a CAM
    model = Quadrants(pattern)
    groups = [Group(f"q{i}", (f"q.{i}",)) for i in range(4)]
    rnd = Randomizer(model, seed=0, groups=groups)
    x = torch.zeros(1, 1, 40, 40)
    region = torch.ones(1, 40, 40, dtype=torch.bool)
    with torch.no_grad():
        trained = _norm(model(x))
        sims = {"cascade": [], "independent": []}
        for test, step, name, net in rnd.steps():
            assert name == f"q{step - 1}"
            sims[test].append(similarities(trained, _norm(net(x)), region))
    for key in ("spearman", "ssim", "hog"):
        curve = [1.0] + [float(s[key][0]) for s in sims["cascade"]]
        assert all(a > b for a, b in zip(curve, curve[1:])), (key, curve)  # strictly decreasing
        assert curve[-1] < 0.2
        # one quadrant alone changes the map less than the whole cascade
        assert min(float(s[key][0]) for s in sims["independent"]) > curve[-1]
    # the working copy is restored; the trained model was never touched
    assert all(torch.equal(q.p, p.p) for q, p in zip(rnd.work.q, model.q))
    assert torch.equal(model(x)[0], pattern)


def test_hog_ignores_the_sign_of_a_map():
    s = torch.rand(1, 32, 32)
    region = torch.ones_like(s, dtype=torch.bool)
    sims = similarities(s, 1 - s, region)  # inverted: unsigned gradients see the same edges
    assert float(sims["spearman"][0]) == pytest.approx(-1.0) and float(sims["hog"][0]) == pytest.approx(1.0)


def test_groups_and_steps_of_an_smp_unet(tiny_model):
    model, _ = tiny_model
    groups = randomization_groups(model)
    names = [g.name for g in groups]
    assert names == ["segmentation_head", "decoder.blocks.2", "decoder.blocks.1", "decoder.blocks.0",
                     "encoder.3", "encoder.2", "encoder.1"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    used = {k for g in groups for m in g.modules for k in before if k.startswith(m + ".")}
    rnd = Randomizer(model, seed=4)
    changed_prev: set[str] = set()
    for test, step, name, net in rnd.steps():
        state = net.state_dict()
        changed = {k for k, v in state.items() if v.is_floating_point() and not torch.equal(v, before[k])}
        # the group's tensors that re-initialisation changes (a fresh BatchNorm is reset to the same values)
        own = {k for k in rnd.keys[step - 1] if state[k].is_floating_point() and not torch.equal(rnd.random[k], before[k])}
        if test == "cascade":
            assert changed_prev < changed and own <= changed  # cumulative
            changed_prev = changed
        else:
            assert changed <= own  # one group alone (a parameter may keep its value by chance)
    # the groups cover every parameter the forward uses; the last cascade step holds all their random values
    assert {k for keys in rnd.keys for k in keys} == used
    unused = {k.rsplit(".", 2)[0] for k, _ in model.named_parameters() if k not in used}
    assert all(k.startswith(("encoder.layer3", "encoder.layer4")) for k in unused)  # depth 3: never called
    assert changed_prev == {k for k in rnd.random if rnd.random[k].is_floating_point() and not torch.equal(rnd.random[k], before[k])}
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)
    rnd2 = Randomizer(model, seed=4)
    assert all(torch.equal(rnd.random[k], rnd2.random[k]) for k in rnd.random)


def test_ssim_matches_a_scipy_reference():
    ndi = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    a = rng.random((2, 40, 33))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)

    def ref(x, y):
        f = lambda z: ndi.gaussian_filter(z, 1.5, truncate=3.5, mode="reflect")  # noqa: E731
        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        return (((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))).mean()

    got = ssim(torch.from_numpy(a), torch.from_numpy(b))
    assert got.tolist() == pytest.approx([ref(a[0], b[0]), ref(a[1], b[1])], abs=1e-6)
    assert ssim(torch.from_numpy(a), torch.from_numpy(a)).tolist() == pytest.approx([1.0, 1.0])


def test_hog_matches_a_loop_reference():
    rng = np.random.default_rng(1)
    img = rng.random((24, 32))
    # from scratch: centred gradients, 9 unsigned bins (hard), 8x8 cells, 3x3 blocks, L2-Hys
    gr, gc = np.zeros_like(img), np.zeros_like(img)
    gr[1:-1] = img[2:] - img[:-2]
    gc[:, 1:-1] = img[:, 2:] - img[:, :-2]
    mag, ang = np.hypot(gr, gc), np.rad2deg(np.arctan2(gr, gc)) % 180
    cells = np.zeros((3, 4, 9))
    for r in range(24):
        for c in range(32):
            cells[r // 8, c // 8, min(int(ang[r, c] // 20), 8)] += mag[r, c] / 64
    feats = []
    for br in range(1):
        for bc in range(2):
            v = cells[br:br + 3, bc:bc + 3].ravel()
            v = v / np.sqrt((v ** 2).sum() + 1e-10)
            v = np.minimum(v, 0.2)
            feats.append(v / np.sqrt((v ** 2).sum() + 1e-10))
    got = hog(torch.from_numpy(img)[None])[0].numpy()
    assert got == pytest.approx(np.concatenate(feats), abs=1e-6)
    t = torch.from_numpy(img)[None]
    assert hog_similarity(t, t).item() == pytest.approx(1.0)
    assert math.isnan(hog_similarity(t, torch.zeros_like(t)).item())  # a constant map has no gradients


def test_verdicts_pass_fail_inconclusive():
    def rows(method, spearmans):
        return [{"scene": "s", "tile": i, "object": None, "method": method, "layer": "L", "test": "cascade",
                 "step": 1, "randomized": "all", "spearman": v, "ssim": v, "hog": v, "constant_map": False}
                for i, v in enumerate(spearmans)]

    rng = np.random.default_rng(0)
    data = rows("low", rng.normal(0.1, 0.05, 30)) + rows("high", rng.normal(0.9, 0.05, 30)) \
        + rows("edge", rng.normal(0.45, 0.3, 10))
    summ = summarize_sanity(data, n_boot=1000)
    verdict = {v["method"]: v["verdict"] for v in sanity_verdicts(summ, 0.5)}
    assert verdict == {"low": "pass", "high": "fail", "edge": "inconclusive"}


def test_spearman_of_absolute_maps_on_the_study_maps():
    s = torch.rand(1, 32, 32)
    region = torch.ones_like(s, dtype=torch.bool)
    sims = similarities(s, 1 - s, region)
    assert float(sims["spearman"][0]) == pytest.approx(-1.0)
    assert float(sims["spearman"][0]) == pytest.approx(float(M.spearman(s, 1 - s, region)[0]))
    assert bool(similarities(s, torch.zeros_like(s), region)["constant_map"][0])


def test_sanity_on_the_first_tiles_only(make_geotiff, tmp_path, tiny_model):
    from segxai_cli.evaluation.config import StudyConfig
    from segxai_cli.evaluation.run import run_study

    make_geotiff("s.tif", np.random.default_rng(0).integers(0, 255, (3, 64, 192), dtype=np.uint8))
    cfg = StudyConfig(methods=["gradcam"], thresholds=[0.5], curve_steps=0, budgets=[], sanity=True,
                      sanity_tiles=2, bootstrap=0, batch_size=3)
    res = run_study([tmp_path / "s.tif"], None, tiny_model, config=cfg, device="cpu")
    assert {r["tile"] for r in res.sanity_rows} == {0, 1}
    by_tile = {r["tile"]: r["sanity_spearman"] for r in res.rows}
    assert math.isnan(by_tile[2]) and not math.isnan(by_tile[0])

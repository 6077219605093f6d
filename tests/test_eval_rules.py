"""The study's rules on hand-made fixtures: the tie rule, fixed pixel budgets and ignored pixels.

The fake model (tests/test_eval_metrics.py) is pixelwise: p = sigmoid(4 x - 2) with the fill x = 0,
so every reduced input's confidence has a closed form the from-scratch reference below computes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_eval_metrics import Fake

from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.batch import TileTensors, evaluate_batch
from segxai_cli.evaluation.config import StudyConfig, parse_budgets
from segxai_cli.errors import UsageError

H = W = 6
RNG = np.random.default_rng(3)
X = RNG.uniform(0.0, 1.0, (H, W)).astype(np.float32)
# Saliency with three levels only: many ties, so the tie rule decides every curve step.
S = np.where(X > 0.66, 1.0, np.where(X > 0.33, 0.5, 0.0)).astype(np.float32)
IGNORED = np.zeros((H, W), bool)
IGNORED[0, :3] = True  # e.g. mask value 255
IGNORED[4, 4] = True


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def reference_auc(x, s, region, steps, seed, kind):
    """From scratch: rank the counted pixels by saliency, ties by the seeded permutation; at each
    step remove (deletion) or keep only (insertion) the top k = round(f n); ignored pixels always stay."""
    n_pix = x.size
    perm = M.tie_priority(n_pix, seed).numpy()
    pos = np.empty(n_pix, int)
    pos[perm] = np.arange(n_pix)
    flat_s, flat_r = s.ravel(), region.ravel()
    order = sorted(np.flatnonzero(flat_r), key=lambda i: (-flat_s[i], pos[i]))
    n = len(order)
    target = (x.ravel() > 0.5) & flat_r
    ys = []
    for f in np.linspace(0, 1, steps + 1):
        top = np.zeros(n_pix, bool)
        top[order[: int(round(f * n))]] = True
        keep = ~top if kind == "deletion" else top
        keep |= ~flat_r
        xr = np.where(keep, x.ravel(), 0.0)
        ys.append(_sig(4 * xr - 2)[target].mean())
    ys = np.array(ys)
    return float(((ys[1:] + ys[:-1]) / 2).sum() / steps)


def _batch(region, valid=None, steps=6, seed=0, budgets=(), thresholds=(0.5,)):
    cfg = StudyConfig(methods=["m"], layers=["l"], thresholds=list(thresholds), curve_steps=steps, chunk=64,
                      budgets=list(budgets), seed=seed)
    tiles = TileTensors(torch.from_numpy(X)[None, None], torch.from_numpy(region)[None],
                        valid=None if valid is None else torch.from_numpy(valid)[None])
    return evaluate_batch(Fake().eval(), tiles, cfg, 1, maps={"l": {"m": torch.from_numpy(S)[None]}})[0]


# ----------------------------------------------------------------------------- tie rule
def test_tie_rule_ranks_exactly_k_in_seeded_order():
    s = torch.from_numpy(S)[None]
    region = torch.from_numpy(~IGNORED)[None]
    rank, n = M.saliency_rank(s, region, tie_seed=0)
    assert n.item() == (~IGNORED).sum()
    for frac in (0.05, 0.1, 0.2, 0.5, 1.0):
        top = M.top_k(rank, n, frac)
        assert top.sum().item() == round(frac * n.item())  # exactly k pixels, always inside the region
        assert not (top & ~region).any()
        # a pixel is never taken before a more salient one
        if top.any() and (~top & region).any():
            assert s[top].min() >= s[~top & region].max()
    # among tied pixels the seeded permutation decides: the same seed gives the same order
    perm = M.tie_priority(H * W, 0)
    tied = [i for i in perm.tolist() if S.ravel()[i] == 1.0 and not IGNORED.ravel()[i]]
    assert [rank.flatten()[i].item() for i in tied] == sorted(rank.flatten()[i].item() for i in tied)
    assert torch.equal(rank, M.saliency_rank(s, region, tie_seed=0)[0])
    assert not torch.equal(rank, M.saliency_rank(s, region, tie_seed=1)[0])
    assert torch.equal(M.tie_priority(10, 5), torch.randperm(10, generator=torch.Generator().manual_seed(5)))


@pytest.mark.parametrize("seed", [0, 7])
def test_deletion_insertion_auc_with_ties_match_reference(seed):
    region = ~IGNORED
    row = _batch(region, seed=seed)[0]
    assert row["deletion_auc"] == pytest.approx(reference_auc(X, S, region, 6, seed, "deletion"), abs=1e-6)
    assert row["insertion_auc"] == pytest.approx(reference_auc(X, S, region, 6, seed, "insertion"), abs=1e-6)


def test_tie_order_matters_so_it_is_a_rule():
    region = np.ones((H, W), bool)
    a = reference_auc(X, S, region, 6, 0, "deletion")
    b = reference_auc(X, S, region, 6, 1, "deletion")
    assert abs(a - b) > 1e-4  # two tie orders, two AUCs: the rule must be fixed (and it is: by --seed)


# ----------------------------------------------------------------------------- ignored pixels
def test_ignored_pixels_one_rule_everywhere():
    region = ~IGNORED
    rows = _batch(region, steps=6, budgets=[0.25])
    # valid=None and valid=every pixel give the same rows: ignored pixels are never changed
    rows_valid = _batch(region, valid=np.ones((H, W), bool), steps=6, budgets=[0.25])
    for a, b in zip(rows, rows_valid):
        assert {k: v for k, v in a.items() if isinstance(v, float) and not math.isnan(v)} == pytest.approx(
            {k: v for k, v in b.items() if isinstance(v, float) and not math.isnan(v)})
    # the curves' end points follow the same rule as their steps (ignored pixels kept at 100 % too)
    r = rows[0]
    assert r["deletion_auc"] == pytest.approx(reference_auc(X, S, region, 6, 0, "deletion"), abs=1e-6)
    assert r["insertion_auc"] == pytest.approx(reference_auc(X, S, region, 6, 0, "insertion"), abs=1e-6)
    # M1 / M2 at t = 0.5: Phi changed, ignored pixels kept whatever their saliency
    target = (X > 0.5) & region
    phi = (S >= 0.5) & region
    for mode, keep in (("M1", ~phi), ("M2", phi)):
        xr = np.where(keep | IGNORED, X, 0.0)
        want = _sig(4 * xr - 2)[target].mean()
        got = next(x for x in rows if x["mode"] == mode and x["threshold"] == 0.5)
        assert got["confidence"] == pytest.approx(want, rel=1e-5)


# ----------------------------------------------------------------------------- budgets
def test_fixed_budget_rows_pick_exactly_k_pixels():
    region = ~IGNORED
    n = int(region.sum())
    rows = _batch(region, steps=0, budgets=[0.1, 0.25])
    pred = int(((X > 0.5) & region).sum())
    for b in (0.1, 0.25):
        k = round(b * n)
        m2 = next(r for r in rows if r["budget"] == b and r["mode"] == "M2")
        m1 = next(r for r in rows if r["budget"] == b and r["mode"] == "M1")
        assert m2["threshold"] is None
        assert m2["kept_fraction"] == pytest.approx(k / n) and m1["kept_fraction"] == pytest.approx(1 - k / n)
        assert m2["saliency_ratio"] == pytest.approx(k / pred)
        # the top-k of the tie rule, through the pixelwise model
        rank, nn_ = M.saliency_rank(torch.from_numpy(S)[None], torch.from_numpy(region)[None], tie_seed=0)
        top = M.top_k(rank, nn_, b)[0].numpy()
        xr = np.where(top | IGNORED, X, 0.0)
        assert m2["confidence"] == pytest.approx(_sig(4 * xr - 2)[(X > 0.5) & region].mean(), rel=1e-5)


def test_budget_option_grammar():
    assert parse_budgets(None) == [0.05, 0.1, 0.2]
    assert parse_budgets(["5%,10%", "0.2"]) == [0.05, 0.1, 0.2]
    assert parse_budgets(["none"]) == []
    for bad in ("0", "150%", "abc", "-0.1"):
        with pytest.raises(UsageError, match="--budget"):
            parse_budgets([bad])
    assert StudyConfig(budgets=[]).validate().budgets == []
    with pytest.raises(UsageError, match="--bootstrap"):
        StudyConfig(bootstrap=50).validate()
    with pytest.raises(UsageError, match="--feature-id needs --vector"):
        StudyConfig(feature_id="name").validate()

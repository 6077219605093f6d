"""Confidence intervals, paired tests, the best-method table and the per-scene summary (numpy only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segxai_cli.evaluation.compare import best_methods, paired_comparisons
from segxai_cli.evaluation.stats import mean_ci, paired_test, rng_for, sign_flip_p
from segxai_cli.evaluation.summary import summarize, summarize_scenes


def test_ci_contains_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 40, 160, 640):
        v = rng.normal(0.5, 0.2, n)
        ci = mean_ci(v, n_boot=2000, rng=rng_for(0, n))
        assert ci.low[0] < ci.mean[0] < ci.high[0]
        assert ci.mean[0] == pytest.approx(v.mean())
        widths.append(ci.high[0] - ci.low[0])
        # the percentile interval is close to the normal one, mean ± 1.96 s / sqrt(n)
        assert widths[-1] == pytest.approx(2 * 1.96 * v.std(ddof=1) / math.sqrt(n), rel=0.15)
    assert widths == sorted(widths, reverse=True)
    # seeded: the same key gives the same interval, NaN values are skipped, one unit gives no interval
    v = np.array([0.1, np.nan, 0.4, 0.3])
    a, b = mean_ci(v, rng=rng_for(3, "k")), mean_ci(v, rng=rng_for(3, "k"))
    assert (a.low, a.high) == (b.low, b.high) and a.mean[0] == pytest.approx(0.8 / 3)
    assert math.isnan(mean_ci(np.array([0.2, np.nan]), rng=rng_for(0)).low[0])


def test_units_are_resampled_whole():
    # two rows of one unit count as one draw: unit means 0 and 1, equal weight per row
    v = np.array([0.0, 0.0, 1.0])
    ci = mean_ci(v, units=["a", "a", "b"], n_boot=4000, rng=rng_for(0))
    assert ci.mean[0] == pytest.approx(1 / 3)
    # each resample holds 0, 1 or 2 copies of unit b's single row among 2 + 1 rows: means 0, 1/3, 1/2, 1
    assert ci.low[0] == 0.0 and ci.high[0] == 1.0


def test_paired_test_clear_winner_and_no_difference():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.2, 0.8, 48)
    better = base - 0.05 + rng.normal(0, 0.01, 48)  # lower is better, on every tile
    t = paired_test(better, base, 2000, rng_for(0, "a"))
    assert t.diff == pytest.approx(-0.05, abs=0.01) and t.high < 0 and t.p_value < 0.01 and t.distinguishable
    same = paired_test(base, base.copy(), 2000, rng_for(0, "b"))
    assert same.diff == 0 and same.p_value == 1.0 and not same.distinguishable
    noise = base + rng.normal(0, 0.05, 48)
    eq = paired_test(noise, base + rng.normal(0, 0.05, 48), 2000, rng_for(0, "c"))
    assert eq.low < 0 < eq.high and eq.p_value > 0.05 and not eq.distinguishable
    # sign-flip p-value: exact for a tiny sample (all 2^3 sign patterns equally likely)
    d = np.array([1.0, 2.0, 3.0])
    assert sign_flip_p(d, 20000, rng_for(0)) == pytest.approx(2 / 8, abs=0.01)


def _rows(methods: dict[str, np.ndarray], scenes: int = 1):
    rows = []
    for m, vals in methods.items():
        for i, v in enumerate(vals):
            for mode in ("M1", "M2"):
                rows.append({"scene": f"s{i % scenes}", "tile": i, "object": None, "method": m, "layer": "L",
                             "mode": mode, "threshold": 0.5, "budget": None, "target_source": "ground_truth",
                             "empty_target": False, "confidence": v, "entropy": v,
                             "deletion_auc": v, "insertion_auc": v})
    return rows


def test_best_table_says_when_the_winner_is_not_distinguishable():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.3, 0.7, 40)
    rows = _rows({"a": base - 0.1, "b": base, "c": base + rng.normal(0, 0.02, 40)})
    metrics = ("confidence", "entropy")
    summ = summarize(rows, metrics=metrics, n_boot=500)
    for r in summ:  # only what best_methods reads
        for k in ("confidence_drop", "entropy_increase", "iou_change"):
            r[f"{k}_mean"] = math.nan
    m1 = best_methods(summ, "M1", rows, n_boot=2000)[0]  # lowest confidence: a, clearly
    assert m1["method"] == "a" and m1["runner_up"] in ("b", "c") and m1["distinguishable"] is True
    assert m1["value_ci_low"] < m1["value"] < m1["value_ci_high"]
    m2 = best_methods(summ, "M2", rows, n_boot=2000)[0]  # highest: b and c are the same up to noise
    assert m2["method"] in ("b", "c") and m2["runner_up"] in ("b", "c") and m2["distinguishable"] is False
    paired = paired_comparisons(rows, ["a", "b", "c"], n_boot=500)
    ab = next(p for p in paired if p["mode"] == "M1" and (p["method_a"], p["method_b"]) == ("a", "b"))
    assert ab["winner"] == "a" and ab["diff"] == pytest.approx(-0.1)
    bc = next(p for p in paired if p["mode"] == "M1" and (p["method_a"], p["method_b"]) == ("b", "c"))
    assert bc["winner"] is None
    assert {p["metric"] for p in paired if p["mode"] is None} == {"deletion_auc", "insertion_auc"}


def test_scene_stratified_summary():
    vals = np.arange(12, dtype=float) / 12  # tiles i -> scene i % 3
    rows = _rows({"a": vals}, scenes=3)
    out = summarize_scenes(rows, metrics=("confidence",), n_boot=500)
    r = next(o for o in out if o["mode"] == "M1")
    scene_means = [vals[i::3].mean() for i in range(3)]
    assert r["n_scenes"] == 3 and r["n"] == 12
    assert r["confidence_scene_mean"] == pytest.approx(np.mean(scene_means))
    assert r["confidence_scene_std"] == pytest.approx(np.std(scene_means, ddof=1))
    assert (r["confidence_scene_min"], r["confidence_scene_max"]) == pytest.approx((min(scene_means), max(scene_means)))
    assert r["confidence_scene_ci_low"] <= r["confidence_scene_mean"] <= r["confidence_scene_ci_high"]

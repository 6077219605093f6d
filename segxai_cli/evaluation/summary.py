"""Aggregating study rows: means, spreads and confidence intervals per group, per scene, per layer.

No pandas: rows are plain dicts, aggregation is numpy; groups are sorted deterministically, so the
same rows always give the same summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from segxai_cli.evaluation.config import METRIC_COLUMNS
from segxai_cli.evaluation.stats import mean_ci, rng_for

GROUP_KEYS: tuple[str, ...] = ("method", "layer", "mode", "threshold", "budget")
MODE_ORDER = {"M1": 0, "M2": 1, "M3": 2}
STATS: tuple[str, ...] = ("mean", "std", "ci_low", "ci_high")


def norm(v: Any) -> Any:
    """A group-key value with NaN (a missing threshold/budget read back from a CSV) as None."""
    return None if isinstance(v, float) and math.isnan(v) else v


def unit(r: dict[str, Any]) -> tuple:
    """The resampling unit of a row: its tile (or its object, in the per-object study)."""
    return (r.get("scene"), r.get("tile"), norm(r.get("object")))


def _sort_value(k: str, v: Any, ranks: dict[str, dict[Any, int]]) -> tuple:
    if k == "mode":
        return (0, MODE_ORDER.get(v, 9))
    if k in ranks and ranks[k]:
        return (0, ranks[k].get(v, len(ranks[k])))
    return (1, 0) if v is None else (0, v)


def group_rows(rows: Iterable[dict[str, Any]], by: Sequence[str], order: Sequence[str] | None = None,
               layer_order: Sequence[str] | None = None) -> list[tuple[tuple, list[dict[str, Any]]]]:
    """Rows grouped by the ``by`` columns, groups sorted (method/layer order, then values; None last)."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(norm(r.get(k)) for k in by), []).append(r)
    ranks = {"method": {m: i for i, m in enumerate(order or [])}, "layer": {m: i for i, m in enumerate(layer_order or [])}}
    return sorted(groups.items(), key=lambda kv: tuple(_sort_value(k, v, ranks) for k, v in zip(by, kv[0])))


def summarize(
    rows: Iterable[dict[str, Any]],
    by: Sequence[str] = GROUP_KEYS,
    metrics: Sequence[str] = METRIC_COLUMNS,
    order: Sequence[str] | None = None,
    layer_order: Sequence[str] | None = None,
    seed: int = 0,
    n_boot: int = 2000,
) -> list[dict[str, Any]]:
    """Mean, std (sample, ddof=1) and 95 % bootstrap interval of each metric per group.

    Rows with ``empty_target`` are counted (``n_empty_target``) but left out of every mean; other
    undefined values (NaN) are skipped per metric (``nanmean``). ``n`` counts the rows used. The
    interval resamples tiles (objects) with ``n_boot`` draws seeded by ``seed`` and the group
    (:mod:`segxai_cli.evaluation.stats`); ``n_boot=0`` leaves it empty.
    ``order`` / ``layer_order``: method / layer order for sorting (default alphabetical).
    """
    out = []
    for gkey, grows in group_rows(rows, by, order, layer_order):
        used = [r for r in grows if not r.get("empty_target")]
        rec: dict[str, Any] = dict(zip(by, gkey))
        rec["n"] = len(used)
        rec["n_empty_target"] = len(grows) - len(used)
        rec["n_tiles"] = len({unit(r) for r in grows})
        rec["target_source"] = "+".join(sorted({r["target_source"] for r in grows}))
        vals = np.array([[float(r[m]) for m in metrics] for r in used], dtype=np.float64).reshape(len(used), len(metrics))
        ci = mean_ci(vals, [unit(r) for r in used], n_boot, rng_for(seed, "summary", tuple(by), gkey))
        for j, m in enumerate(metrics):
            v = vals[:, j][np.isfinite(vals[:, j])]
            rec[f"{m}_mean"] = float(v.mean()) if v.size else math.nan
            rec[f"{m}_std"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = float(ci.low[j]), float(ci.high[j])
        out.append(rec)
    return out


def summary_columns(by: Sequence[str] = GROUP_KEYS, metrics: Sequence[str] = METRIC_COLUMNS) -> list[str]:
    cols = list(by) + ["n", "n_empty_target", "n_tiles", "target_source"]
    for m in metrics:
        cols += [f"{m}_{s}" for s in STATS]
    return cols


def summarize_scenes(rows: Sequence[dict[str, Any]], metrics: Sequence[str] = METRIC_COLUMNS,
                     order: Sequence[str] | None = None, layer_order: Sequence[str] | None = None,
                     seed: int = 0, n_boot: int = 2000) -> list[dict[str, Any]]:
    """The study stratified by scene: per group, the scene means' mean, spread and interval.

    Each scene counts once (the mean of its tiles); ``<metric>_scene_std``/``_min``/``_max`` are the
    spread of the scene means, ``_scene_ci_low``/``_high`` the 95 % bootstrap interval resampling
    scenes. ``n_scenes``: scenes with a value.
    """
    per_scene = summarize(rows, by=("scene", *GROUP_KEYS), metrics=metrics, order=order,
                          layer_order=layer_order, seed=seed, n_boot=0)
    out = []
    for gkey, grows in group_rows(per_scene, GROUP_KEYS, order, layer_order):
        rec: dict[str, Any] = dict(zip(GROUP_KEYS, gkey))
        rec["n_scenes"] = len(grows)
        rec["n"] = sum(r["n"] for r in grows)
        vals = np.array([[r[f"{m}_mean"] for m in metrics] for r in grows], dtype=np.float64).reshape(len(grows), len(metrics))
        ci = mean_ci(vals, None, n_boot, rng_for(seed, "scenes", gkey))
        for j, m in enumerate(metrics):
            v = vals[:, j][np.isfinite(vals[:, j])]
            rec[f"{m}_scene_mean"] = float(ci.mean[j])
            rec[f"{m}_scene_std"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
            rec[f"{m}_scene_min"] = float(v.min()) if v.size else math.nan
            rec[f"{m}_scene_max"] = float(v.max()) if v.size else math.nan
            rec[f"{m}_scene_ci_low"], rec[f"{m}_scene_ci_high"] = float(ci.low[j]), float(ci.high[j])
        out.append(rec)
    return out


SCENE_STATS: tuple[str, ...] = ("scene_mean", "scene_std", "scene_min", "scene_max", "scene_ci_low", "scene_ci_high")


def scenes_columns(metrics: Sequence[str] = METRIC_COLUMNS) -> list[str]:
    return list(GROUP_KEYS) + ["n_scenes", "n"] + [f"{m}_{s}" for m in metrics for s in SCENE_STATS]


def threshold_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows (or summary rows) of the threshold sweep, without the fixed-budget ones."""
    return [r for r in rows if norm(r.get("budget")) is None]


def budget_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if norm(r.get("budget")) is not None]


LAYER_METRICS: tuple[tuple[str, str, str], ...] = (
    ("M1", "confidence", "M1 conf↓"),
    ("M2", "confidence", "M2 conf↑"),
    ("M3", "entropy", "M3 entr↓"),
    ("M1", "iou_change", "M1 ΔIoU↓"),
    ("M1", "deletion_auc", "del AUC↓"),
)


def layer_comparison(summary_by_layer: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Layer comparison: per method, key metrics for each layer (averaged over thresholds)."""
    idx = {(r["method"], r["layer"], r["mode"]): r for r in summary_by_layer}
    methods = list(dict.fromkeys(r["method"] for r in summary_by_layer))
    layers = list(dict.fromkeys(r["layer"] for r in summary_by_layer))
    out = []
    for m in methods:
        rec: dict[str, Any] = {"method": m}
        for mode, metric, _ in LAYER_METRICS:
            for layer in layers:
                r = idx.get((m, layer, mode))
                rec[f"{mode}_{metric}@{layer}"] = r[f"{metric}_mean"] if r else math.nan
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- sanity check
SANITY_KEYS: tuple[str, ...] = ("method", "layer", "test", "step", "randomized")
SANITY_METRICS: tuple[str, ...] = ("spearman", "ssim", "hog")
VERDICT_COLUMNS: tuple[str, ...] = (
    "method", "layer", "n", "randomized", "spearman_mean", "spearman_ci_low", "spearman_ci_high",
    "ssim_mean", "ssim_ci_low", "ssim_ci_high", "hog_mean", "threshold", "verdict",
    "least_affected_group", "least_affected_spearman",
)


def summarize_sanity(rows: Sequence[dict[str, Any]], order: Sequence[str] | None = None,
                     layer_order: Sequence[str] | None = None, seed: int = 0, n_boot: int = 2000) -> list[dict[str, Any]]:
    """Mean and 95 % interval (over tiles) of each similarity per method × layer × test × step."""
    out = []
    for gkey, grows in group_rows(rows, SANITY_KEYS, order, layer_order):  # cascade before independent, steps in order
        rec: dict[str, Any] = dict(zip(SANITY_KEYS, gkey))
        rec["n"] = len(grows)
        rec["n_constant_map"] = sum(bool(r.get("constant_map")) for r in grows)
        vals = np.array([[float(r[m]) for m in SANITY_METRICS] for r in grows], dtype=np.float64)
        ci = mean_ci(vals, [unit(r) for r in grows], n_boot, rng_for(seed, "sanity", gkey))
        for j, m in enumerate(SANITY_METRICS):
            rec[f"{m}_mean"], rec[f"{m}_ci_low"], rec[f"{m}_ci_high"] = float(ci.mean[j]), float(ci.low[j]), float(ci.high[j])
        out.append(rec)
    return out


def sanity_summary_columns() -> list[str]:
    return [*SANITY_KEYS, "n", "n_constant_map"] + [f"{m}_{s}" for m in SANITY_METRICS for s in ("mean", "ci_low", "ci_high")]


def sanity_verdicts(sanity_summary: Sequence[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """Per method × layer: pass when the 95 % upper bound of the mean Spearman similarity after the
    full cascade (every group random) is below ``threshold``; fail when the mean itself is not below
    it; inconclusive in between (or with no interval)."""
    out = []
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in sanity_summary:
        cells.setdefault((r["method"], r["layer"]), []).append(r)
    for (method, layer), rs in cells.items():
        cascade = [r for r in rs if r["test"] == "cascade"]
        if not cascade:
            continue
        last = max(cascade, key=lambda r: r["step"])
        indep = [r for r in rs if r["test"] == "independent" and math.isfinite(r["spearman_mean"])]
        least = max(indep, key=lambda r: r["spearman_mean"]) if indep else None
        mean, high = last["spearman_mean"], last["spearman_ci_high"]
        if not math.isfinite(mean):
            verdict = "inconclusive"
        elif mean >= threshold:
            verdict = "fail"
        elif math.isfinite(high) and high < threshold:
            verdict = "pass"
        else:
            verdict = "inconclusive"
        out.append({"method": method, "layer": layer, "n": last["n"], "randomized": "all (cascade)",
                    **{k: last[k] for k in VERDICT_COLUMNS if k in last and k not in ("method", "layer", "n", "randomized")},
                    "threshold": threshold, "verdict": verdict,
                    "least_affected_group": least["randomized"] if least else None,
                    "least_affected_spearman": least["spearman_mean"] if least else math.nan})
    return out

CURVE_COLUMNS = ("method", "layer", "curve", "fraction", "mean", "std", "n")


def curve_summary(curves: Iterable[dict[str, Any]], order: Sequence[str] | None = None,
                  layer_order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The mean deletion/insertion curve per method × layer: confidence on the target at each step
    (mean, sample std, n over tiles; undefined values — tiles without target pixels — skipped)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in curves:
        groups.setdefault((c["method"], c["layer"]), []).append(c)
    m_rank = {m: i for i, m in enumerate(order or [])}
    l_rank = {m: i for i, m in enumerate(layer_order or [])}
    out = []
    for (method, layer), cs in sorted(groups.items(), key=lambda kv: (m_rank.get(kv[0][0], len(m_rank)), kv[0][0],
                                                                       l_rank.get(kv[0][1], len(l_rank)), kv[0][1])):
        for kind in ("deletion", "insertion"):
            values = np.array([c[kind] for c in cs], dtype=np.float64)
            for j, frac in enumerate(cs[0]["fractions"]):
                v = values[:, j][np.isfinite(values[:, j])]
                out.append({"method": method, "layer": layer, "curve": kind, "fraction": frac,
                            "mean": float(v.mean()) if v.size else math.nan,
                            "std": float(v.std(ddof=1)) if v.size > 1 else math.nan, "n": int(v.size)})
    return out

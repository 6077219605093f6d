"""Aggregating study rows: means and spreads per group, the best method per threshold, layer comparison.

No pandas: rows are plain dicts, aggregation is numpy; groups are sorted deterministically, so the
same rows always give the same summary.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from segxai_cli.evaluation.config import METRIC_COLUMNS

GROUP_KEYS: tuple[str, ...] = ("method", "layer", "mode", "threshold")
MODE_ORDER = {"M1": 0, "M2": 1, "M3": 2}

# How each mode picks its best method (the M1/M2/M3 protocol; docs/study.md):
# M1 lowest confidence on the background-only input (largest drop), M2 highest confidence on the
# highlighted-only input (smallest drop), M3 lowest entropy on highlighted + target.
BEST_RULE: dict[str, tuple[str, str]] = {
    "M1": ("confidence", "min"),
    "M2": ("confidence", "max"),
    "M3": ("entropy", "min"),
}


def _sort_key(key: tuple, keys: Sequence[str]) -> tuple:
    out = []
    for k, v in zip(keys, key):
        out.append(MODE_ORDER.get(v, 9) if k == "mode" else v)
    return tuple(out)


def summarize(
    rows: Iterable[dict[str, Any]],
    by: Sequence[str] = GROUP_KEYS,
    metrics: Sequence[str] = METRIC_COLUMNS,
    order: Sequence[str] | None = None,
    layer_order: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Mean and std (sample, ddof=1) of each metric per group.

    Rows with ``empty_target`` are counted (``n_empty_target``) but left out of every mean; other
    undefined values (NaN) are skipped per metric (``nanmean``). ``n`` counts the rows used.
    ``order`` / ``layer_order``: method / layer order for sorting (default alphabetical).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    ranks = {"method": {m: i for i, m in enumerate(order or [])},
             "layer": {m: i for i, m in enumerate(layer_order or [])}}

    def key(item):
        k = list(_sort_key(item[0], by))
        for col, rank in ranks.items():
            if col in by and rank:
                i = list(by).index(col)
                k[i] = rank.get(item[0][i], len(rank))
        return tuple(k)

    out = []
    for gkey, grows in sorted(groups.items(), key=key):
        used = [r for r in grows if not r.get("empty_target")]
        rec: dict[str, Any] = dict(zip(by, gkey))
        rec["n"] = len(used)
        rec["n_empty_target"] = len(grows) - len(used)
        rec["n_tiles"] = len({(r["scene"], r["tile"]) for r in grows})
        rec["target_source"] = "+".join(sorted({r["target_source"] for r in grows}))
        for m in metrics:
            vals = np.array([float(r[m]) for r in used], dtype=np.float64) if used else np.array([])
            vals = vals[np.isfinite(vals)]
            rec[f"{m}_mean"] = float(vals.mean()) if vals.size else math.nan
            rec[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else math.nan
        out.append(rec)
    return out


def summary_columns(by: Sequence[str] = GROUP_KEYS, metrics: Sequence[str] = METRIC_COLUMNS) -> list[str]:
    cols = list(by) + ["n", "n_empty_target", "n_tiles", "target_source"]
    for m in metrics:
        cols += [f"{m}_mean", f"{m}_std"]
    return cols


def best_per_threshold(summary: Sequence[dict[str, Any]], mode: str) -> list[dict[str, Any]]:
    """For each (layer, threshold) the best method in ``mode`` by :data:`BEST_RULE`."""
    metric, how = BEST_RULE[mode]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in summary:
        if r["mode"] == mode:
            groups.setdefault((r["layer"], r["threshold"]), []).append(r)
    out = []
    layer_rank = {layer: i for i, layer in enumerate(dict.fromkeys(r["layer"] for r in summary))}
    for (layer, t), rs in sorted(groups.items(), key=lambda kv: (layer_rank[kv[0][0]], kv[0][1])):
        finite = [r for r in rs if np.isfinite(r[f"{metric}_mean"])]
        if not finite:
            continue
        sign = 1 if how == "min" else -1
        best = min(finite, key=lambda r: (sign * r[f"{metric}_mean"], r["method"]))
        out.append({
            "mode": mode, "layer": layer, "threshold": t, "method": best["method"],
            "criterion": f"{how} {metric}",
            "confidence": best["confidence_mean"], "entropy": best["entropy_mean"],
            "confidence_drop": best["confidence_drop_mean"], "entropy_increase": best["entropy_increase_mean"],
            "iou_change": best["iou_change_mean"], "n": best["n"],
        })
    return out


BEST_COLUMNS = ("mode", "layer", "threshold", "method", "criterion", "confidence", "entropy",
                "confidence_drop", "entropy_increase", "iou_change", "n")
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

"""Comparing methods: the best method per threshold (and per pixel budget), and paired tests.

A method "wins" a (layer, threshold | budget) cell of a mode by the mode's criterion
(:data:`BEST_RULE`); the table also says whether the winner is *distinguishable* from the runner-up:
both are measured on the same tiles, so the comparison is paired
(:func:`~segxai_cli.evaluation.stats.paired_test`: the 95 % paired-bootstrap interval of the mean
difference must exclude 0 and the sign-flip p-value be below 0.05). No correction for the many
cells is applied: read a single "distinguishable" as one test at the 5 % level, not as a family-wise claim.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from segxai_cli.evaluation.stats import paired_test, rng_for
from segxai_cli.evaluation.summary import norm, unit

# How each mode picks its best method (the M1/M2/M3 protocol; docs/study.md):
# M1 lowest confidence on the background-only input (largest drop), M2 highest confidence on the
# highlighted-only input (smallest drop), M3 lowest entropy on highlighted + target.
BEST_RULE: dict[str, tuple[str, str]] = {
    "M1": ("confidence", "min"),
    "M2": ("confidence", "max"),
    "M3": ("entropy", "min"),
}
# Curve metrics compared once per layer (they do not depend on the threshold or the mode).
CURVE_RULE: dict[str, str] = {"deletion_auc": "min", "insertion_auc": "max"}

BEST_COLUMNS = ("mode", "layer", "threshold", "method", "criterion", "confidence", "entropy",
                "confidence_drop", "entropy_increase", "iou_change", "n",
                "budget", "value", "value_ci_low", "value_ci_high", "runner_up", "runner_up_value",
                "diff", "diff_ci_low", "diff_ci_high", "p_value", "distinguishable")
PAIRED_COLUMNS = ("layer", "mode", "threshold", "budget", "metric", "better", "method_a", "method_b", "n",
                  "mean_a", "mean_b", "diff", "diff_ci_low", "diff_ci_high", "p_value", "distinguishable", "winner")


def _values(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, dict[tuple, float]]:
    """method -> {unit: value} (empty-target rows left out, as in the summary)."""
    out: dict[str, dict[tuple, float]] = {}
    for r in rows:
        if not r.get("empty_target"):
            out.setdefault(r["method"], {})[unit(r)] = float(r[metric])
    return out


def _pair(vals: dict[str, dict[tuple, float]], a: str, b: str, n_boot: int, rng):
    units = [u for u in vals.get(a, {}) if u in vals.get(b, {})]
    return paired_test([vals[a][u] for u in units], [vals[b][u] for u in units], n_boot, rng)


def _cell_rows(rows: Sequence[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    cells: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        cells.setdefault((r["layer"], r["mode"], norm(r.get("threshold")), norm(r.get("budget"))), []).append(r)
    return cells


def best_methods(summary: Sequence[dict[str, Any]], mode: str, rows: Sequence[dict[str, Any]] = (),
                 selection: str = "threshold", seed: int = 0, n_boot: int = 2000) -> list[dict[str, Any]]:
    """For each (layer, threshold) -- or (layer, budget) with ``selection="budget"`` -- the best
    method of ``mode`` by :data:`BEST_RULE`, with the runner-up and their paired test (from ``rows``)."""
    metric, how = BEST_RULE[mode]
    sign = 1 if how == "min" else -1
    key = "budget" if selection == "budget" else "threshold"
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in summary:
        if r["mode"] == mode and norm(r.get(key)) is not None and (key == "budget" or norm(r.get("budget")) is None):
            groups.setdefault((r["layer"], r[key]), []).append(r)
    cells = _cell_rows(rows)
    layer_rank = {layer: i for i, layer in enumerate(dict.fromkeys(r["layer"] for r in summary))}
    out = []
    for (layer, v), rs in sorted(groups.items(), key=lambda kv: (layer_rank[kv[0][0]], kv[0][1])):
        ranked = sorted((r for r in rs if math.isfinite(r[f"{metric}_mean"])),
                        key=lambda r: (sign * r[f"{metric}_mean"], r["method"]))
        if not ranked:
            continue
        best = ranked[0]
        rec = {"mode": mode, "layer": layer, "threshold": None, "budget": None, key: v, "method": best["method"],
               "criterion": f"{how} {metric}", "confidence": best["confidence_mean"], "entropy": best["entropy_mean"],
               "confidence_drop": best["confidence_drop_mean"], "entropy_increase": best["entropy_increase_mean"],
               "iou_change": best["iou_change_mean"], "n": best["n"], "value": best[f"{metric}_mean"],
               "value_ci_low": best.get(f"{metric}_ci_low"), "value_ci_high": best.get(f"{metric}_ci_high")}
        if len(ranked) > 1:
            second = ranked[1]
            cell = cells.get((layer, mode, None if key == "budget" else v, v if key == "budget" else None), [])
            test = _pair(_values(cell, metric), best["method"], second["method"], n_boot,
                         rng_for(seed, "best", mode, layer, key, v))
            rec.update(runner_up=second["method"], runner_up_value=second[f"{metric}_mean"], diff=test.diff,
                       diff_ci_low=test.low, diff_ci_high=test.high, p_value=test.p_value,
                       distinguishable=test.distinguishable if rows else None)
        out.append(rec)
    return out


def best_per_threshold(summary: Sequence[dict[str, Any]], mode: str, rows: Sequence[dict[str, Any]] = (),
                       seed: int = 0, n_boot: int = 2000) -> list[dict[str, Any]]:
    """For each (layer, threshold) the best method in ``mode`` (see :func:`best_methods`)."""
    return best_methods(summary, mode, rows, "threshold", seed, n_boot)


def paired_comparisons(rows: Sequence[dict[str, Any]], methods: Sequence[str], seed: int = 0,
                       n_boot: int = 2000) -> list[dict[str, Any]]:
    """Every pair of methods, paired over tiles: per (layer, mode, threshold | budget) on the mode's
    criterion, and per layer on the deletion / insertion AUC (one value per tile)."""
    out = []
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    cells = _cell_rows(rows)
    for (layer, mode, t, b), cell in sorted(cells.items(), key=lambda kv: _cell_key(kv[0], layers)):
        metric, how = BEST_RULE[mode]
        out += _pairs(_values(cell, metric), methods, dict(layer=layer, mode=mode, threshold=t, budget=b),
                      metric, how, n_boot, seed)
    for layer in layers:
        first = next(((k, c) for k, c in cells.items() if k[0] == layer), None)
        if first is None:
            continue
        # the curves repeat in every row of a tile: take one cell's rows
        for metric, how in CURVE_RULE.items():
            out += _pairs(_values(first[1], metric), methods, dict(layer=layer, mode=None, threshold=None, budget=None),
                          metric, how, n_boot, seed)
    return out


def _cell_key(k: tuple, layers: list[str]) -> tuple:
    layer, mode, t, b = k
    return (layers.index(layer), t is None, t or 0.0, b or 0.0, mode)


def _pairs(vals, methods: Sequence[str], ident: dict[str, Any], metric: str, how: str, n_boot: int, seed: int):
    out = []
    present = [m for m in methods if vals.get(m)]
    for a, b in itertools.combinations(present, 2):
        test = _pair(vals, a, b, n_boot, rng_for(seed, "paired", *ident.values(), metric, a, b))
        if test.n == 0:
            continue
        better_a = test.diff < 0 if how == "min" else test.diff > 0
        out.append({**ident, "metric": metric, "better": how, "method_a": a, "method_b": b, "n": test.n,
                    "mean_a": test.mean_a, "mean_b": test.mean_b, "diff": test.diff, "diff_ci_low": test.low,
                    "diff_ci_high": test.high, "p_value": test.p_value, "distinguishable": test.distinguishable,
                    "winner": (a if better_a else b) if test.distinguishable else None})
    return out

"""Reports of a study: tidy CSV, summary CSV, best-method tables, rich tables, PNG plots.

No pandas: rows are plain dicts; aggregation is numpy. Everything written is deterministic
(fixed column order, sorted groups, fixed float formatting), so the same inputs give the same files.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segxai_cli.files import atomic_write_text
from segxai_cli.evaluation.study import COLUMNS, METRIC_COLUMNS

GROUP_KEYS: tuple[str, ...] = ("method", "layer", "mode", "threshold")
MODE_ORDER = {"M1": 0, "M2": 1, "M3": 2}

# How each mode picks its best method (seed 001, Task 1; methods.md):
# M1 lowest confidence on the background-only input (largest drop), M2 highest confidence on the
# highlighted-only input (smallest drop), M3 lowest entropy on highlighted + target.
BEST_RULE: dict[str, tuple[str, str]] = {
    "M1": ("confidence", "min"),
    "M2": ("confidence", "max"),
    "M3": ("entropy", "min"),
}


# ----------------------------------------------------------------------------- files
def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool | np.bool_):
        return "True" if v else "False"
    if isinstance(v, float | np.floating):
        f = float(v)
        return "" if math.isnan(f) else format(f, ".6g")
    return str(v)


def csv_text(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_fmt(r.get(c)) for c in columns])
    return buf.getvalue()


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path, columns: Sequence[str] = COLUMNS) -> Path:
    """Write rows (NaN as an empty field, floats with 6 significant digits) atomically."""
    path = Path(path)
    atomic_write_text(path, csv_text(rows, columns))
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read a tidy CSV back (numbers as float/int, empty as NaN, True/False as bool)."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            out.append({k: _parse(k, v) for k, v in r.items()})
    return out


def _parse(key: str, v: str) -> Any:
    if key in ("scene", "method", "layer", "mode", "target_source"):
        return v
    if v in ("True", "False"):
        return v == "True"
    if v == "":
        return math.nan
    try:
        f = float(v)
    except ValueError:
        return v
    ints = ("tile", "row_off", "col_off", "n_valid", "n_target", "target_class", "n", "n_empty_target", "n_tiles")
    return int(f) if key in ints else f


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")
    return path


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        f = float(obj)
        return None if math.isnan(f) else f
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


# ----------------------------------------------------------------------------- aggregation
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
    """Seed 001, Task 1: for each (layer, threshold) the best method in ``mode`` by :data:`BEST_RULE`."""
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


# ----------------------------------------------------------------------------- terminal
def _cell(v: Any, digits: int = 3) -> str:
    if isinstance(v, float | np.floating):
        if math.isnan(v):
            return "–"
        if v != 0 and abs(v) < 10 ** -digits:
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


def _pm(r: dict[str, Any], m: str, digits: int = 3) -> str:
    mean, std = r.get(f"{m}_mean", math.nan), r.get(f"{m}_std", math.nan)
    if math.isnan(mean):
        return "–"
    return _cell(mean, digits) if math.isnan(std) else f"{_cell(mean, digits)} ± {_cell(std, digits)}"


def overview_rows(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One line per method × layer × threshold with the headline metric of each mode."""
    idx = {(r["method"], r["layer"], r["threshold"], r["mode"]): r for r in summary}
    seen, out = set(), []
    for r in summary:
        k = (r["method"], r["layer"], r["threshold"])
        if k in seen:
            continue
        seen.add(k)
        m1, m2, m3 = (idx.get((*k, m)) for m in ("M1", "M2", "M3"))
        any_r = m1 or m2 or m3
        out.append({"method": k[0], "layer": k[1], "threshold": k[2], "M1": m1, "M2": m2, "M3": m3, "any": any_r})
    return out


def summary_tables(summary: Sequence[dict[str, Any]], title: str = "Faithfulness summary"):
    """Two rich Tables (fit 80 columns): M1/M2/M3 headline metrics, then the other metrics.

    Means over tiles (std in the summary CSV); per method × layer × threshold.
    """
    from rich.table import Table

    def table(t_title, cols):
        t = Table(title=t_title, title_justify="left")
        for col in ("method", "layer", "t") + cols:
            t.add_column(col, justify="left" if col in ("method", "layer") else "right")
        return t

    a = table(f"{title}: M1/M2/M3 (mean over tiles)",
              ("M1 conf", "M1 drop↑", "M2 conf", "M2 drop↓", "M3 entr↓", "M1 ΔIoU↓", "n"))
    b = table(f"{title}: other metrics",
              ("Dice↑", "SR", "PPS↑", "IPS↓", "del↓", "ins↑", "sanity↓"))
    for o in overview_rows(summary):
        m1, m2, m3, r = o["M1"] or {}, o["M2"] or {}, o["M3"] or {}, o["any"]
        g = lambda d, m, k=3: _cell(d.get(f"{m}_mean", math.nan), k)  # noqa: E731
        key = (o["method"], o["layer"], f"{o['threshold']:g}")
        n = f"{r['n']}" + (f"+{r['n_empty_target']}∅" if r["n_empty_target"] else "")
        a.add_row(*key, g(m1, "confidence"), g(m1, "confidence_drop"), g(m2, "confidence"), g(m2, "confidence_drop"),
                  g(m3, "entropy", 4), g(m1, "iou_change"), n)
        b.add_row(*key, g(r, "dice_explained"), g(r, "saliency_ratio"), g(r, "pps"), g(r, "ips"),
                  g(r, "deletion_auc"), g(r, "insertion_auc"), g(r, "sanity_spearman"))
    return a, b


def best_table(best: Sequence[dict[str, Any]], mode: str, layer: str | None = None):
    """Seed 001's "best method for each threshold value" table for one mode (and layer)."""
    from rich.table import Table

    from segxai_cli.evaluation.reduce import MODE_NAMES

    metric, how = BEST_RULE[mode]
    rows = [b for b in best if layer is None or b["layer"] == layer]
    where = f" @ {layer}" if layer else ""
    t = Table(title=f"{mode} {MODE_NAMES[mode]}{where}: best method per threshold ({how} {metric})", title_justify="left")
    for col in ("threshold", "method", "confidence", "entropy", "conf drop", "entr incr", "ΔIoU"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for b in rows:
        t.add_row(f"{b['threshold']:g}", b["method"], _cell(b["confidence"], 4), _cell(b["entropy"], 5),
                  _cell(b["confidence_drop"]), _cell(b["entropy_increase"]), _cell(b["iou_change"]))
    return t


LAYER_METRICS: tuple[tuple[str, str, str], ...] = (
    ("M1", "confidence", "M1 conf↓"),
    ("M2", "confidence", "M2 conf↑"),
    ("M3", "entropy", "M3 entr↓"),
    ("M1", "iou_change", "M1 ΔIoU↓"),
    ("M1", "deletion_auc", "del AUC↓"),
)


def layer_comparison(summary_by_layer: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Seed 001, Task 3: per method, key metrics for each layer (averaged over thresholds)."""
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


def layer_table(summary_by_layer: Sequence[dict[str, Any]]):
    """Rows method × layer, key metrics (mean over tiles and thresholds); best layer per method in bold."""
    from rich.table import Table

    layers = list(dict.fromkeys(r["layer"] for r in summary_by_layer))
    t = Table(title="Layer comparison (mean over tiles and thresholds; bold: better layer for the method)",
              title_justify="left")
    t.add_column("method")
    t.add_column("layer")
    for _, _, label in LAYER_METRICS:
        t.add_column(label, justify="right")
    for rec in layer_comparison(summary_by_layer):
        for li, layer in enumerate(layers):
            cells = [rec["method"] if li == 0 else "", layer]
            for mode, metric, label in LAYER_METRICS:
                vals = [rec[f"{mode}_{metric}@{lay}"] for lay in layers]
                finite = [v for v in vals if np.isfinite(v)]
                best = (max(finite) if "↑" in label else min(finite)) if len(finite) > 1 else None
                v = vals[li]
                s = _cell(v, 4)
                cells.append(f"[bold]{s}[/bold]" if best is not None and v == best else s)
            t.add_row(*cells, end_section=li == len(layers) - 1)
    return t


# ----------------------------------------------------------------------------- plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOT_PANELS: tuple[tuple[str, str, str], ...] = (
    ("M1", "confidence_drop", "M1 background only: confidence drop (↑ faithful)"),
    ("M2", "confidence_drop", "M2 highlighted only: confidence drop (↓ faithful)"),
    ("M3", "entropy", "M3 highlighted + target: entropy (↓ certain)"),
    ("M1", "iou_change", "M1: IoU change (↓ faithful)"),
    ("M1", "deletion_auc", "deletion AUC (↓ faithful)"),
    ("M1", "insertion_auc", "insertion AUC (↑ faithful)"),
)


def plot_evaluate(summary_by_layer: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bars per method (one colour per layer) with std error bars: the headline metric of each mode."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in summary_by_layer))
    layers = list(dict.fromkeys(r["layer"] for r in summary_by_layer))
    idx = {(r["method"], r["layer"], r["mode"]): r for r in summary_by_layer}
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    width = 0.8 / max(1, len(layers))
    xs = np.arange(len(methods))
    for ax, (mode, metric, label) in zip(axes.flat, PLOT_PANELS):
        for li, layer in enumerate(layers):
            means = [idx.get((m, layer, mode), {}).get(f"{metric}_mean", math.nan) for m in methods]
            stds = [idx.get((m, layer, mode), {}).get(f"{metric}_std", math.nan) for m in methods]
            stds = [0.0 if not np.isfinite(s) else s for s in stds]
            ax.bar(xs + (li - (len(layers) - 1) / 2) * width, means, width, yerr=stds, capsize=2,
                   label=layer, color=f"C{li}", alpha=0.85, error_kw={"elinewidth": 0.8})
        ax.set_title(label, fontsize=9)
        ax.set_xticks(xs, methods, rotation=30, ha="right", fontsize=8)
        ax.axhline(0, color="black", lw=0.5)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    if len(layers) > 1:
        axes.flat[0].legend(fontsize=8, title="layer", title_fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


SWEEP_METRICS: tuple[tuple[str, str], ...] = (
    ("confidence", "confidence (mean p_c over T)"),
    ("entropy", "entropy (normalised)"),
    ("iou_change", "IoU change"),
)
LINESTYLES = ("-", "--", ":", "-.")


def plot_sweep(summary: Sequence[dict[str, Any]], path: str | Path, title: str = "",
               metrics: Sequence[tuple[str, str]] = SWEEP_METRICS) -> Path:
    """Each metric against the threshold: one line per method (line style per layer), one panel per mode."""
    plt = _plt()
    modes = [m for m in ("M1", "M2", "M3") if any(r["mode"] == m for r in summary)]
    methods = list(dict.fromkeys(r["method"] for r in summary))
    layers = list(dict.fromkeys(r["layer"] for r in summary))
    fig, axes = plt.subplots(len(metrics), len(modes), figsize=(4.3 * len(modes), 3.1 * len(metrics)), squeeze=False)
    from segxai_cli.evaluation.reduce import MODE_NAMES

    for ci, mode in enumerate(modes):
        for ri, (metric, label) in enumerate(metrics):
            ax = axes[ri][ci]
            for mi, method in enumerate(methods):
                for li, layer in enumerate(layers):
                    rs = sorted((r for r in summary if r["mode"] == mode and r["method"] == method and r["layer"] == layer),
                                key=lambda r: r["threshold"])
                    if not rs:
                        continue
                    ax.plot([r["threshold"] for r in rs], [r[f"{metric}_mean"] for r in rs], marker="o", ms=3,
                            color=f"C{mi}", ls=LINESTYLES[li % len(LINESTYLES)],
                            label=method if len(layers) == 1 else f"{method} @ {layer}")
            if ri == 0:
                ax.set_title(f"{mode}: {MODE_NAMES[mode]}", fontsize=10)
            if ci == 0:
                ax.set_ylabel(label, fontsize=9)
            if ri == len(metrics) - 1:
                ax.set_xlabel("threshold t (Phi = S ≥ t)", fontsize=9)
            ax.tick_params(labelsize=8)
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(labels) - 1) // 5), 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=64)
    plt.close(fig)
    return path

"""The study as pictures: bars per method and layer (evaluate), curves against the threshold (sweep)
and the pixel budget, the sanity check's similarity curves. Error bars: the 95 % bootstrap interval
of the mean (the sample std where no interval was computed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segxai_cli.evaluation.config import MODE_NAMES

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


def yerr(recs: Sequence[dict[str, Any]], metric: str) -> np.ndarray:
    """(2, n) asymmetric error bars: the 95 % interval around the mean, else ± std, else 0."""
    out = np.zeros((2, len(recs)))
    for i, r in enumerate(recs):
        mean = r.get(f"{metric}_mean", math.nan)
        lo, hi = r.get(f"{metric}_ci_low", math.nan), r.get(f"{metric}_ci_high", math.nan)
        if np.isfinite(lo) and np.isfinite(hi) and np.isfinite(mean):
            out[:, i] = (max(0.0, mean - lo), max(0.0, hi - mean))
        elif np.isfinite(r.get(f"{metric}_std", math.nan)):
            out[:, i] = r[f"{metric}_std"]
    return out


def _save(fig, path: str | Path, dpi: int) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


def plot_evaluate(summary_by_layer: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Bars per method (one colour per layer) with 95 % interval error bars: the headline metric of each mode."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in summary_by_layer))
    layers = list(dict.fromkeys(r["layer"] for r in summary_by_layer))
    idx = {(r["method"], r["layer"], r["mode"]): r for r in summary_by_layer}
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5))
    width = 0.8 / max(1, len(layers))
    xs = np.arange(len(methods))
    for ax, (mode, metric, label) in zip(axes.flat, PLOT_PANELS):
        for li, layer in enumerate(layers):
            recs = [idx.get((m, layer, mode), {}) for m in methods]
            means = [r.get(f"{metric}_mean", math.nan) for r in recs]
            ax.bar(xs + (li - (len(layers) - 1) / 2) * width, means, width, yerr=yerr(recs, metric), capsize=2,
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
               metrics: Sequence[tuple[str, str]] = SWEEP_METRICS, x: str = "threshold") -> Path:
    """Each metric against the threshold (or ``x="budget"``): one line per method (line style per
    layer), one panel per mode, 95 % interval error bars."""
    plt = _plt()
    modes = [m for m in ("M1", "M2", "M3") if any(r["mode"] == m for r in summary)]
    methods = list(dict.fromkeys(r["method"] for r in summary))
    layers = list(dict.fromkeys(r["layer"] for r in summary))
    fig, axes = plt.subplots(len(metrics), len(modes), figsize=(4.3 * len(modes), 3.1 * len(metrics)), squeeze=False)
    for ci, mode in enumerate(modes):
        for ri, (metric, label) in enumerate(metrics):
            ax = axes[ri][ci]
            for mi, method in enumerate(methods):
                for li, layer in enumerate(layers):
                    rs = sorted((r for r in summary if r["mode"] == mode and r["method"] == method and r["layer"] == layer),
                                key=lambda r: r[x])
                    if not rs:
                        continue
                    ax.errorbar([r[x] for r in rs], [r[f"{metric}_mean"] for r in rs], yerr=yerr(rs, metric),
                                marker="o", ms=3, capsize=2, elinewidth=0.7, color=f"C{mi}",
                                ls=LINESTYLES[li % len(LINESTYLES)],
                                label=method if len(layers) == 1 else f"{method} @ {layer}")
            if ri == 0:
                ax.set_title(f"{mode}: {MODE_NAMES[mode]}", fontsize=10)
            if ci == 0:
                ax.set_ylabel(label, fontsize=9)
            if ri == len(metrics) - 1:
                ax.set_xlabel("threshold t (Phi = S ≥ t)" if x == "threshold" else
                              "pixel budget (Phi = the top fraction of counted pixels)", fontsize=9)
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


BUDGET_METRICS: tuple[tuple[str, str], ...] = (
    ("confidence_drop", "confidence drop"),
    ("entropy", "entropy (normalised)"),
    ("iou_change", "IoU change"),
)


def plot_budget(summary: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """The fixed-budget comparison: each metric against the pixel budget, one panel per mode."""
    return plot_sweep(summary, path, title=f"{title}: fixed pixel budgets" if title else "fixed pixel budgets",
                      metrics=BUDGET_METRICS, x="budget")


SANITY_PANELS: tuple[tuple[str, str], ...] = (("spearman", "Spearman (abs. maps)"), ("ssim", "SSIM"), ("hog", "HOG similarity"))


def plot_sanity(sanity_summary: Sequence[dict[str, Any]], path: str | Path, groups: Sequence[str],
                title: str = "") -> Path:
    """Similarity with the trained model's maps: cascading randomisation (top row; step 0 = trained,
    1) and independent randomisation of each group (bottom row); one line per method × layer."""
    plt = _plt()
    keys = list(dict.fromkeys((r["method"], r["layer"]) for r in sanity_summary))
    layers = {k[1] for k in keys}
    fig, axes = plt.subplots(2, 3, figsize=(14, 7.5), squeeze=False)
    for row, test in enumerate(("cascade", "independent")):
        for col, (metric, label) in enumerate(SANITY_PANELS):
            ax = axes[row][col]
            for ki, (method, layer) in enumerate(keys):
                rs = sorted((r for r in sanity_summary if (r["method"], r["layer"], r["test"]) == (method, layer, test)),
                            key=lambda r: r["step"])
                if not rs:
                    continue
                xs = [0] + [r["step"] for r in rs] if test == "cascade" else [r["step"] for r in rs]
                ys = [1.0] + [r[f"{metric}_mean"] for r in rs] if test == "cascade" else [r[f"{metric}_mean"] for r in rs]
                err = yerr(rs, metric)
                if test == "cascade":
                    err = np.concatenate([np.zeros((2, 1)), err], 1)
                ax.errorbar(xs, ys, yerr=err, marker="o", ms=3, capsize=2, elinewidth=0.7, color=f"C{ki % 10}",
                            ls=LINESTYLES[(ki // 10) % len(LINESTYLES)],
                            label=method if len(layers) == 1 else f"{method} @ {layer}")
            names = (["trained"] if test == "cascade" else []) + [("+ " if test == "cascade" else "") + g for g in groups]
            ax.set_xticks(range(0 if test == "cascade" else 1, len(groups) + 1), names, rotation=40, ha="right", fontsize=7)
            ax.set_ylim(-0.25, 1.05)
            ax.axhline(0, color="black", lw=0.5)
            ax.grid(alpha=0.3)
            ax.set_title(f"{test} randomisation: {label}", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False)
    if title:
        fig.suptitle(f"{title}: parameter-randomisation sanity check", fontsize=10)
    fig.tight_layout(rect=(0, 0.04 + 0.025 * ((len(labels) - 1) // 6), 1, 1))
    return _save(fig, path, 72)


def plot_curves(curves: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """The mean deletion and insertion curves (``rep_curves.csv`` rows): one line per method (line
    style per layer), shaded ± one standard deviation across tiles."""
    plt = _plt()
    methods = list(dict.fromkeys(r["method"] for r in curves))
    layers = list(dict.fromkeys(r["layer"] for r in curves))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, kind, label in zip(axes, ("deletion", "insertion"), ("deletion: most salient removed first (↓ faithful)",
                                                                  "insertion: most salient kept first (↑ faithful)")):
        for mi, method in enumerate(methods):
            for li, layer in enumerate(layers):
                rs = sorted((r for r in curves if r["curve"] == kind and r["method"] == method and r["layer"] == layer),
                            key=lambda r: r["fraction"])
                if not rs:
                    continue
                x = np.array([r["fraction"] for r in rs])
                y = np.array([r["mean"] for r in rs], dtype=float)
                s = np.nan_to_num(np.array([r["std"] for r in rs], dtype=float))
                ax.plot(x, y, color=f"C{mi}", ls=LINESTYLES[li % len(LINESTYLES)], marker="o", ms=3,
                        label=method if len(layers) == 1 else f"{method} @ {layer}")
                ax.fill_between(x, y - s, y + s, color=f"C{mi}", alpha=0.08, lw=0)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("fraction of pixels (ranked by saliency)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("confidence on the target", fontsize=9)
    axes[1].legend(fontsize=8, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, 72)

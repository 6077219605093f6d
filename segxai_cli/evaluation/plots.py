"""The study as pictures: bars per method and layer (evaluate), curves against the threshold (sweep),
the deletion/insertion curves."""

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


def _save(fig, path: str | Path, title: str = "", dpi: int = 72) -> Path:
    """Title, tight layout, PNG, figure closed."""
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    _plt().close(fig)
    return path


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
    return _save(fig, path, title)


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
    return _save(fig, path, title)

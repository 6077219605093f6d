"""The study on a terminal: rich tables that fit 80 columns (means over tiles; spreads are in the CSVs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from segxai_cli.evaluation.config import MODE_NAMES
from segxai_cli.evaluation.compare import BEST_RULE
from segxai_cli.evaluation.summary import LAYER_METRICS, layer_comparison

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


def overview_rows(summary: Sequence[dict[str, Any]], x: str = "threshold") -> list[dict[str, Any]]:
    """One line per method × layer × threshold (or ``x="budget"``) with the headline metric of each mode."""
    summary = [r for r in summary if r.get(x) is not None]
    idx = {(r["method"], r["layer"], r[x], r["mode"]): r for r in summary}
    seen, out = set(), []
    for r in summary:
        k = (r["method"], r["layer"], r[x])
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


def budget_table(summary: Sequence[dict[str, Any]], title: str = "Fixed pixel budgets"):
    """M1/M2/M3 at fixed pixel budgets (mean over tiles, [95 % interval] of the M1 drop)."""
    from rich.table import Table

    t = Table(title=f"{title}: Phi = top budget of the counted pixels (mean over tiles)", title_justify="left")
    for col in ("method", "layer", "budget", "M1 drop↑", "M1 95% CI", "M2 drop↓", "M3 entr↓", "n"):
        t.add_column(col, justify="left" if col in ("method", "layer") else "right")
    for o in overview_rows(summary, "budget"):
        m1, m2, m3, r = o["M1"] or {}, o["M2"] or {}, o["M3"] or {}, o["any"]
        lo, hi = m1.get("confidence_drop_ci_low", math.nan), m1.get("confidence_drop_ci_high", math.nan)
        ci = f"{_cell(lo)}–{_cell(hi)}" if np.isfinite(lo) else "–"
        t.add_row(o["method"], o["layer"], f"{o['threshold']:.0%}", _cell(m1.get("confidence_drop_mean", math.nan)), ci,
                  _cell(m2.get("confidence_drop_mean", math.nan)), _cell(m3.get("entropy_mean", math.nan), 4), str(r["n"]))
    return t


def best_table(best: Sequence[dict[str, Any]], mode: str, layer: str | None = None, x: str = "threshold"):
    """The "best method for each threshold" (or budget) table of one mode (and layer), with the
    paired test against the runner-up ("≈ runner-up" when they are not distinguishable)."""
    from rich.table import Table

    metric, how = BEST_RULE[mode]
    rows = [b for b in best if (layer is None or b["layer"] == layer) and b.get(x) is not None]
    where = f" @ {layer}" if layer else ""
    t = Table(title=f"{mode} {MODE_NAMES[mode]}{where}: best method per {x} ({how} {metric})", title_justify="left")
    for col in (x, "method", "confidence", "entropy", "ΔIoU", "runner-up", "diff [95% CI]", "p"):
        t.add_column(col, justify="left" if col in ("method", "runner-up") else "right")
    for b in rows:
        ru = b.get("runner_up") or "–"
        if b.get("runner_up") and b.get("distinguishable") is False:
            ru = f"≈ {ru}"
        diff = "–" if b.get("diff") is None else f"{_cell(b['diff'], 4)} [{_cell(b['diff_ci_low'], 4)}, {_cell(b['diff_ci_high'], 4)}]"
        t.add_row(f"{b[x]:g}" if x == "threshold" else f"{b[x]:.0%}", b["method"], _cell(b["confidence"], 4),
                  _cell(b["entropy"], 5), _cell(b["iou_change"]), ru, diff,
                  "–" if b.get("p_value") is None else _cell(b["p_value"], 4))
    return t


def verdict_table(verdicts: Sequence[dict[str, Any]]):
    """The sanity check's verdict per method and layer."""
    from rich.table import Table

    thr = verdicts[0]["threshold"] if verdicts else math.nan
    t = Table(title=f"Sanity check (cascading randomisation): pass if the 95 % upper bound of Spearman < {thr:g}",
              title_justify="left")
    for col in ("method", "layer", "Spearman [95% CI]", "SSIM", "HOG", "verdict", "least affected by"):
        t.add_column(col, justify="left" if col in ("method", "layer", "verdict", "least affected by") else "right")
    for v in verdicts:
        t.add_row(v["method"], v["layer"],
                  f"{_cell(v['spearman_mean'])} [{_cell(v['spearman_ci_low'])}, {_cell(v['spearman_ci_high'])}]",
                  _cell(v["ssim_mean"]), _cell(v["hog_mean"]), v["verdict"],
                  f"{v['least_affected_group']} ({_cell(v['least_affected_spearman'])})" if v["least_affected_group"] else "–")
    return t


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

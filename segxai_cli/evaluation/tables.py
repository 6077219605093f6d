"""The study on a terminal: rich tables that fit 80 columns (means over tiles; spreads are in the CSVs)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from segxai_cli.evaluation.config import MODE_NAMES
from segxai_cli.evaluation.summary import BEST_RULE, LAYER_METRICS, layer_comparison

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
    """The "best method for each threshold" table of one mode (and layer)."""
    from rich.table import Table

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

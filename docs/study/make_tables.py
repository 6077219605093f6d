"""Render the markdown tables of docs/study.md from the CSVs in this folder.

    uv run python docs/study/make_tables.py > /tmp/tables.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from segxai_cli.evaluation.report import read_csv
from segxai_cli.evaluation.tables import _cell

HERE = Path(__file__).parent


def table(rows, cols, headers=None):
    out = ["| " + " | ".join(headers or cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_cell(r[c][0], r[c][1]) if isinstance(r[c], tuple) else _cell(r[c]) for c in cols) + " |")
    return "\n".join(out)


def best_tables(name):
    best = read_csv(HERE / f"{name}_best.csv")
    for mode, crit in (("M1", "lowest confidence"), ("M2", "highest confidence"), ("M3", "lowest entropy")):
        for layer in dict.fromkeys(b["layer"] for b in best):
            rows = [b for b in best if b["mode"] == mode and b["layer"] == layer]
            print(f"\n**{mode}** ({crit}), layer `{layer}`\n")
            print(table([{**b, "threshold": f"{b['threshold']:g}", "confidence": (b["confidence"], 4),
                          "entropy": (b["entropy"], 5)} for b in rows],
                        ["threshold", "method", "confidence", "entropy", "confidence_drop", "entropy_increase", "iou_change"],
                        ["t", "method", "confidence", "entropy", "conf. drop", "entropy incr.", "IoU change"]))


def per_threshold(name, metric, mode, digits=3):
    summ = read_csv(HERE / f"{name}_summary.csv")
    methods = list(dict.fromkeys(s["method"] for s in summ))
    ts = sorted({s["threshold"] for s in summ})
    for layer in dict.fromkeys(s["layer"] for s in summ):
        idx = {(s["method"], s["threshold"]): s for s in summ if s["mode"] == mode and s["layer"] == layer}
        rows = [{"method": m, **{f"{t:g}": (idx[(m, t)][f"{metric}_mean"], digits) for t in ts}} for m in methods]
        print(f"\n{mode} `{metric}` (mean over tiles), layer `{layer}`\n")
        print(table(rows, ["method"] + [f"{t:g}" for t in ts], ["method"] + [f"t = {t:g}" for t in ts]))


def overview(name):
    summ = read_csv(HERE / f"{name}_summary.csv")
    idx = {(s["method"], s["layer"], s["threshold"], s["mode"]): s for s in summ}
    keys = list(dict.fromkeys((s["method"], s["layer"], s["threshold"]) for s in summ))
    rows = []
    for k in keys:
        m1, m2, m3 = (idx[(*k, m)] for m in ("M1", "M2", "M3"))
        rows.append({"method": k[0], "layer": k[1], "t": f"{k[2]:g}",
                     "m1c": (m1["confidence_mean"], 3), "m1d": (m1["confidence_drop_mean"], 3),
                     "m2c": (m2["confidence_mean"], 3), "m2d": (m2["confidence_drop_mean"], 3),
                     "m3e": (m3["entropy_mean"], 4), "m3i": (m3["entropy_increase_mean"], 3),
                     "iou": (m1["iou_change_mean"], 3), "dice": (m1["dice_explained_mean"], 3),
                     "sr": (m1["saliency_ratio_mean"], 2), "pps": (m1["pps_mean"], 3), "ips": (m1["ips_mean"], 3),
                     "del": (m1["deletion_auc_mean"], 3), "ins": (m1["insertion_auc_mean"], 3),
                     "san": (m1["sanity_spearman_mean"], 3), "n": f"{m1['n']}" + (f" (+{m1['n_empty_target']} empty)" if m1["n_empty_target"] else "")})
    cols = ["method", "layer", "t", "m1c", "m1d", "m2c", "m2d", "m3e", "m3i", "iou", "dice", "sr", "pps", "ips", "del", "ins", "san", "n"]
    heads = ["method", "layer", "t", "M1 conf", "M1 drop ↑", "M2 conf", "M2 drop ↓", "M3 entropy ↓", "M3 incr.",
             "M1 IoU change ↓", "Dice expl. ↑", "SR", "PPS ↑", "IPS ↓", "del. AUC ↓", "ins. AUC ↑", "sanity ρ ↓", "n"]
    print(table(rows, cols, heads))


def layers(name):
    """Seed 001 Task 3: per method and layer, metric means averaged over the thresholds (from the summary)."""
    summ = read_csv(HERE / f"{name}_summary.csv")
    out = []
    for m in dict.fromkeys(s["method"] for s in summ):
        for layer in dict.fromkeys(s["layer"] for s in summ):
            def g(mode, k, d=4):
                v = [s[f"{k}_mean"] for s in summ if s["method"] == m and s["layer"] == layer and s["mode"] == mode]
                return (sum(v) / len(v), d)

            out.append({"method": m, "layer": layer, "a": g("M1", "confidence"), "b": g("M2", "confidence"),
                        "c": g("M3", "entropy"), "d": g("M1", "iou_change", 3), "e": g("M1", "dice_explained", 3),
                        "f": g("M1", "saliency_ratio", 2)})
    print(table(out, ["method", "layer", "a", "b", "c", "d", "e", "f"],
                ["method", "layer", "M1 conf ↓", "M2 conf ↑", "M3 entropy ↓", "M1 IoU change ↓", "Dice expl. ↑", "SR"]))


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "best":
        best_tables(sys.argv[2])
    elif what == "overview":
        overview(sys.argv[2])
    elif what == "metric":
        per_threshold(sys.argv[2], sys.argv[3], sys.argv[4])
    elif what == "layers":
        layers(sys.argv[2])

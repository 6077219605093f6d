"""Render the markdown tables of docs/study.md from the CSVs in this folder (written by run.sh).

    uv run python docs/study/make_tables.py > /tmp/tables.md

Every mean is followed by its 95 % bootstrap interval over tiles, ``0.123 [0.101, 0.145]``.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path

from segxai_cli.evaluation.report import read_csv

HERE = Path(__file__).parent
MODES = {"M1": ("confidence", "min", "lowest confidence"), "M2": ("confidence", "max", "highest confidence"),
         "M3": ("entropy", "min", "lowest entropy")}


def num(v, d=3) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.{d}f}"


def ci(row, metric, d=3) -> str:
    m = row.get(f"{metric}_mean")
    lo, hi = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    if lo in (None, "") or (isinstance(lo, float) and math.isnan(lo)):
        return num(m, d)
    return f"{num(m, d)} [{num(lo, d)}, {num(hi, d)}]"


def table(header, rows) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def _key(v):
    return None if v in (None, "") or (isinstance(v, float) and math.isnan(v)) else round(float(v), 6)


def summary_index(path):
    summ = read_csv(path)
    idx = {(s["method"], s["layer"], s["mode"], _key(s["threshold"]), _key(s["budget"])): s for s in summ}
    methods = list(dict.fromkeys(s["method"] for s in summ))
    layers = list(dict.fromkeys(s["layer"] for s in summ))
    return idx, methods, layers


def overview(folder: Path, title: str) -> None:
    """t = 0.5 at the first layer: every metric with its interval."""
    idx, methods, layers = summary_index(folder / "evaluate_summary.csv")
    layer = layers[0]
    print(f"\n**{title}** — t = 0.5, mean [95 % CI] over tiles\n")
    rows = []
    for m in methods:
        lay = layer if (m, layer, "M1", 0.5, None) in idx else "input"
        g = lambda mode: idx[(m, lay, mode, 0.5, None)]  # noqa: E731
        rows.append([m, ci(g("M1"), "confidence_drop"), ci(g("M1"), "iou_change"), ci(g("M2"), "confidence_drop"),
                     ci(g("M3"), "entropy", 4), ci(g("M2"), "dice_explained"), num(g("M1")["saliency_ratio_mean"], 2),
                     ci(g("M1"), "pps"), ci(g("M1"), "deletion_auc"), ci(g("M1"), "insertion_auc")])
    print(table(["method", "M1 conf. drop ↑", "M1 IoU change ↓", "M2 conf. drop ↓", "M3 entropy ↓", "Dice expl. ↑",
                 "SR", "PPS ↑", "deletion AUC ↓", "insertion AUC ↑"], rows))
    any_row = next(iter(idx.values()))
    print(f"\nBaseline on the full tiles: confidence {num(any_row['confidence_full_mean'])}, normalised entropy "
          f"{num(any_row['entropy_full_mean'])}, IoU {num(any_row['iou_full_mean'])}; n = {int(any_row['n_tiles'])} tiles.")


def budgets(folder: Path, title: str) -> None:
    idx, methods, layers = summary_index(folder / "evaluate_summary.csv")
    bs = sorted({k[4] for k in idx if k[4] is not None})
    print(f"\n**{title}** — fixed pixel budgets (the top b of the counted pixels by saliency), mean [95 % CI]\n")
    rows = []
    for m in methods:
        lay = layers[0] if (m, layers[0], "M1", None, bs[0]) in idx else "input"
        rows.append([m] + [ci(idx[(m, lay, "M1", None, b)], "confidence_drop") for b in bs]
                    + [ci(idx[(m, lay, "M1", None, b)], "iou_change") for b in bs])
    print(table(["method"] + [f"M1 conf. drop @ {b:.0%} ↑" for b in bs] + [f"M1 IoU change @ {b:.0%} ↓" for b in bs],
                rows))


BLACKBOX = ("rise", "occlusion")


def winners(folder: Path, title: str, name: str = "evaluate", cams_only: bool = False) -> None:
    """Best method per mode at t = 0.5 and at each budget, with the paired test against the runner-up."""
    idx, methods, layers = summary_index(folder / f"{name}_summary.csv")
    if cams_only:
        methods = [m for m in methods if m not in BLACKBOX]
    paired = read_csv(folder / f"{name}_paired.csv")
    pidx = {(p["layer"], p["mode"], _key(p["threshold"]), _key(p["budget"]), p["method_a"], p["method_b"]): p
            for p in paired}
    sels = sorted({(k[3], k[4]) for k in idx}, key=lambda s: (s[0] is None, s[0] or 0, s[1] or 0))
    which = "the CAMs and randomcam" if cams_only else "all methods"
    print(f"\n**{title}** — best of {which} and the paired test against the runner-up "
          "(distinguishable: the paired 95 % interval of the difference excludes 0 and the sign-flip p < 0.05)\n")
    rows = []
    for t, b in sels:
        for mode, (metric, better, _) in MODES.items():
            cands = [(idx[(m, layers[0], mode, t, b)][f"{metric}_mean"], m) for m in methods
                     if (m, layers[0], mode, t, b) in idx]
            cands.sort(reverse=better == "max")
            (v1, m1), (v2, m2) = cands[0], cands[1]
            p = pidx.get((layers[0], mode, t, b, m1, m2)) or pidx.get((layers[0], mode, t, b, m2, m1))
            verdict = "–"
            if p is not None:
                pv = float(p["p_value"])
                pt = "p < 0.001" if pv < 0.001 else f"p = {pv:.3f}"
                verdict = f"yes ({pt})" if str(p["distinguishable"]) == "True" else f"**no** ({pt})"
            sel = f"t = {t:g}" if t is not None else f"budget {b:.0%}"
            rows.append([sel, mode, f"{m1} ({num(v1, 4)})", f"{m2} ({num(v2, 4)})", verdict])
    print(table(["selection", "mode (metric)", "best", "runner-up", "distinguishable"], rows))


def sanity(folder: Path) -> None:
    v = read_csv(folder / "evaluate_sanity_verdict.csv")
    print("\n**Sanity check** (cascading randomisation to the input, last step; Spearman / SSIM of the maps with "
          "the randomised model's; pass = Spearman below 0.5)\n")
    print(table(["method", "layer", "n tiles", "Spearman [95 % CI]", "SSIM [95 % CI]", "HOG", "verdict",
                 "least affected group (ρ)"],
                [[r["method"], r["layer"], int(r["n"]), ci(r, "spearman"), ci(r, "ssim"), num(r["hog_mean"]),
                  r["verdict"], f"{r['least_affected_group']} ({num(r['least_affected_spearman'], 2)})"] for r in v]))
    s = read_csv(folder / "evaluate_sanity_summary.csv")
    steps = defaultdict(dict)
    for r in s:
        if r["test"] == "cascade":
            steps[r["method"]][int(r["step"])] = (r["randomized"], r["spearman_mean"])
    n = max(max(d) for d in steps.values())
    names = [steps[next(iter(steps))][i][0] for i in range(1, n + 1)]
    print("\nCascade (Spearman after randomising the groups from the output down to each step):\n")
    print(table(["method"] + [f"→ {g}" for g in names],
                [[m] + [num(d[i][1], 2) for i in range(1, n + 1)] for m, d in steps.items()]))


def sweep_best() -> None:
    best = read_csv(HERE / "sweep_best.csv")
    keys = [c for c in ("runner_up", "distinguishable", "p_value") if c in best[0]]
    for mode, (metric, _, crit) in MODES.items():
        for layer in dict.fromkeys(b["layer"] for b in best):
            rows = [b for b in best if b["mode"] == mode and b["layer"] == layer and _key(b.get("threshold")) is not None]
            print(f"\n**{mode}** ({crit}), layer `{layer}`\n")
            print(table(["t", "best", metric, "runner-up", "distinguishable"],
                        [[f"{b['threshold']:g}", b["method"], num(b[metric], 4), b.get("runner_up", "–"),
                          ("yes" if str(b.get("distinguishable")) == "True" else "**no**") if "distinguishable" in keys
                          else "–"] for b in rows]))


def sweep_iou() -> None:
    idx, methods, layers = summary_index(HERE / "sweep_summary.csv")
    ts = sorted({k[3] for k in idx if k[3] is not None})
    for layer in layers:
        print(f"\nM1 IoU change (mean [95 % CI]), layer `{layer}`\n")
        print(table(["method"] + [f"t = {t:g}" for t in ts],
                    [[m] + [ci(idx[(m, layer, "M1", t, None)], "iou_change") for t in ts] for m in methods]))


def sweep_layers() -> None:
    idx, methods, layers = summary_index(HERE / "sweep_summary.csv")
    ts = sorted({k[3] for k in idx if k[3] is not None})
    rows = []
    for m in methods:
        for layer in layers:
            def mean(mode, metric):
                return sum(idx[(m, layer, mode, t, None)][f"{metric}_mean"] for t in ts) / len(ts)
            rows.append([m, layer, num(mean("M1", "confidence"), 4), num(mean("M2", "confidence"), 4),
                         num(mean("M3", "entropy"), 4), num(mean("M1", "iou_change")), num(mean("M2", "dice_explained")),
                         num(mean("M1", "saliency_ratio"), 2)])
    print("\nMeans over tiles and the five thresholds\n")
    print(table(["method", "layer", "M1 conf ↓", "M2 conf ↑", "M3 entropy ↓", "M1 IoU change ↓", "Dice expl. ↑", "SR"],
                rows))


def notes(folder: Path, title: str) -> None:
    """Per-tile notes: Score-CAM's effective channels, the eigen family's sign rule."""
    rows = [r for r in read_csv(folder / "evaluate.csv") if r["mode"] == "M1" and _key(r["threshold"]) == 0.5]
    out = []
    for m in dict.fromkeys(r["method"] for r in rows):
        mr = [r for r in rows if r["method"] == m]
        eff = [float(r["effective_channels"]) for r in mr if _key(r["effective_channels"]) is not None]
        rules = Counter(int(float(r["sign_rule"])) for r in mr if _key(r["sign_rule"]) is not None)
        corr = [float(r["sign_corr"]) for r in mr if _key(r["sign_corr"]) is not None]
        if eff:
            out.append([m, f"effective channels {min(eff):.1f}–{max(eff):.1f} (mean {sum(eff) / len(eff):.1f})"])
        if rules:
            names = {0: "Grad-CAM", 1: "region", 2: "extent"}
            out.append([m, "sign by " + ", ".join(f"{names[k]} on {v}" for k, v in sorted(rules.items()))
                        + (f" tiles; correlation {min(corr):.2f}–{max(corr):.2f}" if corr else "")])
    if out:
        print(f"\n**{title}** — what the methods noted per tile\n")
        print(table(["method", "note"], out))


def main() -> None:
    print("<!-- generated by docs/study/make_tables.py -->")
    overview(HERE, "Bundled model")
    budgets(HERE, "Bundled model")
    winners(HERE, "Bundled model")
    winners(HERE, "Bundled model", cams_only=True)
    notes(HERE, "Bundled model")
    print("\n### The sanity check\n")
    sanity(HERE / "sanity")
    if (HERE / "sweep_best.csv").exists():
        print("\n### Task 1: best method per threshold\n")
        sweep_best()
        print("\n### Task 2: IoU change when the highlighted pixels are removed (M1)\n")
        sweep_iou()
        print("\n### Task 3: final vs. 2nd decoder block\n")
        sweep_layers()
    if (HERE / "pgc" / "evaluate_summary.csv").exists():
        print("\n### Our Score-/Ablation-CAM against pytorch-grad-cam's\n")
        overview(HERE / "pgc", "Bundled model, our Score-/Ablation-CAM against pytorch-grad-cam's")
        notes(HERE / "pgc", "Bundled model, our Score-/Ablation-CAM against pytorch-grad-cam's")
    if (HERE / "model2" / "evaluate_summary.csv").exists():
        print("\n### Second model: DeepLabV3+\n")
        overview(HERE / "model2", "DeepLabV3+")
        budgets(HERE / "model2", "DeepLabV3+")
        winners(HERE / "model2", "DeepLabV3+")
        winners(HERE / "model2", "DeepLabV3+", cams_only=True)
        notes(HERE / "model2", "DeepLabV3+")


if __name__ == "__main__":
    main()

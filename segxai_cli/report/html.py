"""``report.html``: one page with its CSS and a few lines of vanilla JS inline, the study's figures
embedded and the quicklooks linked relative to the page — no network, works from ``file://``,
readable on a laptop screen and printable. Tables sort by a click on their header.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any, Optional
from urllib.parse import quote

from segxai_cli.report.gather import ReportData, Scene, Study

SANITY_MAX_RHO = 0.5  # mean Spearman below this: the maps depend on the learned weights (Adebayo et al.)

CSS = """
:root { --fg: #1d232a; --muted: #5b6670; --line: #d8dde2; --band: #f4f6f8; --accent: #1f5fa8; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       max-width: 1200px; margin: 0 auto; padding: 0 18px 40px; }
header { border-bottom: 2px solid var(--fg); margin: 18px 0 8px; }
h1 { font-size: 1.5em; margin: 0 0 4px; } h2 { font-size: 1.25em; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05em; margin: 18px 0 6px; }
nav a, a { color: var(--accent); } nav { margin: 6px 0 10px; } nav a { margin-right: 14px; }
.muted, figcaption { color: var(--muted); font-size: .9em; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: .88em; margin: 6px 0 12px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 8px; text-align: right; vertical-align: middle; white-space: nowrap; }
th { background: var(--band); position: sticky; top: 0; }
th.text, td.text { text-align: left; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " ▲"; } table.sortable th[aria-sort=descending]::after { content: " ▼"; }
#scene-table td img { height: 84px; width: auto; display: block; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
.pass { color: #1b7a35; } .fail { color: #b3261e; font-weight: 600; }
@media print {
  body { max-width: none; font-size: 11pt; } nav { display: none; } a { color: inherit; text-decoration: none; }
  section.scene, figure, tr { break-inside: avoid; } h2 { break-after: avoid; } th { position: static; }
}
"""

# Sort a table by the clicked column: numbers by value (data-sort when given), text alphabetically.
JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      function key(row) {
        var cell = row.cells[col], v = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
        return v !== "" && isFinite(v) ? Number(v) : v;
      }
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), t;
        if (typeof x === "number" && typeof y === "number") { t = x - y; }
        else if (typeof x === "number") { t = -1; } else if (typeof y === "number") { t = 1; }
        else { t = String(x).localeCompare(String(y), undefined, { numeric: true }); }
        return asc ? t : -t;
      });
      rows.forEach(function (r) { table.tBodies[0].appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>{css}</style>
</head>
<body>
{body}
<script>{js}</script>
</body>
</html>
"""

Cell = tuple[str, Optional[float]]  # (html, numeric sort key or None)


def e(v: Any) -> str:
    return escape(str(v), quote=True)


def num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or v == "":
        return "–"
    if isinstance(v, float):
        return f"{v:.2e}" if v != 0 and abs(v) < 10 ** -digits else f"{v:.{digits}f}"
    return e(v)


def fnum(v: Any) -> Optional[float]:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], text_cols: int = 1, cls: str = "sortable",
          table_id: str = "") -> str:
    """A table: the first ``text_cols`` columns left-aligned; sortable by a click on a header."""
    def cell(tag: str, i: int, html: str, key: Optional[float] = None) -> str:
        attrs = ' class="text"' if i < text_cols else ""
        if key is not None:
            attrs += f' data-sort="{key!r}"'
        return f"<{tag}{attrs}>{html}</{tag}>"

    head = "".join(cell("th", i, e(h)) for i, h in enumerate(headers))
    body = "\n".join("<tr>" + "".join(cell("td", i, h, k) for i, (h, k) in enumerate(r)) + "</tr>" for r in rows)
    ident = f' id="{e(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table class="{cls}"{ident}><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>'


def facts(items: Sequence[tuple[str, Any]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{e(k)}</dt><dd>{v}</dd>" for k, v in items if v not in (None, "", [])) + "</dl>"


class Linker:
    """URLs of the folder's files relative to the page (the page may be written elsewhere)."""

    def __init__(self, folder: Path, page_dir: Path) -> None:
        self.prefix = os.path.relpath(Path(folder).resolve(), Path(page_dir).resolve()).replace(os.sep, "/")

    def __call__(self, name: str) -> str:
        rel = name if self.prefix == "." else f"{self.prefix}/{name}"
        return e(quote(rel, safe="/@"))


def render(data: ReportData, page_dir: Path, generated: str, version: str) -> str:
    link = Linker(data.folder, page_dir)
    parts, nav = [], []
    if data.scenes:
        parts += [run_section(data, link), scenes_section(data, link)]
        nav += [("run", "Run"), ("scenes", "Scenes")]
    for i, study in enumerate(data.studies):
        parts.append(study_section(study, f"study-{i + 1}"))
        nav.append((f"study-{i + 1}", f"Study: {study.name}"))
    title = f"segxai report: {data.folder.resolve().name}"
    header = (f"<header><h1>{e(title)}</h1><p class=\"muted\">Generated {e(generated)} by segxai {e(version)} from "
              f"the files in <code>{e(data.folder)}</code>.</p><nav>"
              + "".join(f'<a href="#{a}">{e(t)}</a>' for a, t in nav) + "</nav></header>")
    return PAGE.format(title=e(title), css=CSS, js=JS, body=header + "\n".join(parts))


# ----------------------------------------------------------------------------- explain
def run_section(data: ReportData, link: Linker) -> str:
    recs = [s.record for s in data.scenes]
    last = (data.manifest or {}).get("last_run") or {}
    opts = last.get("options") or recs[0].get("options") or {}
    model = last.get("model") or recs[0].get("model") or {}
    env = last.get("environment") or recs[0].get("environment") or {}
    mp = sum((r.get("size") or [0, 0])[0] * (r.get("size") or [0, 0])[1] for r in recs) / 1e6
    secs = sum(float((r.get("timings") or {}).get("seconds") or 0) for r in recs)
    files = [f'<a href="{link(n)}">{e(n)}</a>' for n in (data.qgis_project, data.scenes_csv) if n]
    return '<section id="run"><h2>Run</h2>' + facts([
        ("model", e(f"{model.get('path') or 'bundled sample model'} ({model.get('arch') or ''} / {model.get('encoder') or ''})")
         + (f" <span class=\"muted\">sha256 {e(str(model.get('sha256'))[:16])}…</span>" if model.get("sha256") else "")),
        ("class explained", e(f"{opts.get('class_name')} (index {opts.get('target_class')})")),
        ("methods", e(", ".join(opts.get("methods") or []))),
        ("layer", e(" | ".join(opts.get("layers") or []))),
        ("normalisation · region", e(f"{opts.get('normalize')} · {opts.get('region')}")),
        ("tiles", e(f"{opts.get('tile_size')} px, overlap {opts.get('overlap')}, batch {opts.get('batch_size')} on {opts.get('device')}")),
        ("scenes", e(f"{len(recs)} complete, {mp:.1f} megapixels")),
        ("time", e(f"{secs:.1f} s of scene processing, {mp / secs:.2f} megapixels/s" if secs else "–")
         + (f" <span class=\"muted\">(last run started {e(last.get('started'))}, {e(last.get('seconds'))} s)</span>" if last else "")),
        ("versions", e(", ".join(f"{k} {v}" for k, v in env.items() if k != "platform"))),
        ("platform", e(env.get("platform", ""))),
        ("files", " · ".join(files)),
    ]) + "</section>"


def scenes_section(data: ReportData, link: Linker) -> str:
    bands = list(dict.fromkeys(b for s in data.scenes for b in s.bands))
    headers = ["", "scene", "size (px)", "tiles computed", "seconds", "MP/s", "valid %", "class %"] + [f"mean {b}" for b in bands]
    rows = []
    for s in data.scenes:
        r, size = s.row, s.record.get("size") or [0, 0]
        first = next(iter(s.quicklooks.values()), None) or s.panel
        thumb: Cell = (f'<a href="#scene-{e(s.name)}"><img src="{link(first)}" alt="{e(s.name)}"></a>' if first else "–", None)
        pct = [fnum(r.get(k)) for k in ("valid_fraction", "coverage")]
        rows.append([thumb, (f'<a href="#scene-{e(s.name)}">{e(s.name)}</a>', None),
                     (f"{size[0]} × {size[1]}", float(size[0] * size[1])),
                     (f"{num(r.get('tiles_computed'))} / {num(r.get('tiles'))}", fnum(r.get("tiles_computed"))),
                     (num(fnum(r.get("seconds")), 1), fnum(r.get("seconds"))),
                     (num(fnum(r.get("megapixels_per_s")), 2), fnum(r.get("megapixels_per_s")))]
                    + [(num(p * 100, 1) if p is not None else "–", p) for p in pct]
                    + [(num(fnum(r.get(f"mean_{b}"))), fnum(r.get(f"mean_{b}"))) for b in bands])
    body = table(headers, rows, text_cols=2, table_id="scene-table")
    details = "\n".join(scene_detail(s, link) for s in data.scenes)
    return (f'<section id="scenes"><h2>Scenes</h2><p class="muted">Click a column header to sort. Mean saliency over '
            f"the valid pixels; class % = share of valid pixels predicted as the explained class.</p>{body}\n{details}</section>")


def scene_detail(s: Scene, link: Linker) -> str:
    outputs = s.record.get("outputs") or {}
    files = [f'<a href="{link(n)}">{e(n)}</a>' for k, n in outputs.items() if k in ("saliency", "prediction")]
    files += [f'<a href="{link(n)}">{e(b)} quicklook</a>' for b, n in s.quicklooks.items()]
    if s.panel:
        fig = (f'<figure><a href="{link(s.panel)}"><img src="{link(s.panel)}" alt="{e(s.name)}: input, prediction and '
               f'every method"></a><figcaption>The input (cumulative 2–98 % stretch), the prediction (explained class '
               f"outlined) and each method's saliency over the input, each stretched for display to 2–98 % of its "
               f"non-zero values (colour bar in data units; the COG keeps the data in [0, 1]).</figcaption></figure>")
    else:
        fig = '<p class="muted">No quicklook for this scene (turned off, or the scene is above the size cap).</p>'
    return (f'<section class="scene" id="scene-{e(s.name)}"><h3>{e(s.name)}</h3>{fig}'
            f'<p class="muted">Files: {" · ".join(files)}</p></section>')


# ----------------------------------------------------------------------------- studies
def study_section(study: Study, anchor: str) -> str:
    from segxai_cli.report.figures import study_figures

    m, cfg = study.meta, study.meta.get("config") or {}
    figs = "\n".join(f'<figure><img src="{uri}" alt="{e(cap)}"><figcaption>{e(cap)}</figcaption></figure>'
                     for cap, uri in study_figures(study))
    note = ""
    if "prediction" in (m.get("target_source") or []):
        note = ('<p class="muted">No ground-truth mask for some scenes: the model\'s prediction stands in for the '
                "target pixels T there (target_source = prediction).</p>")
    info = facts([
        ("command", e(" ".join(["segxai"] + [str(a) for a in m.get("argv") or [study.command]]))),
        ("model", e(Path(str(m.get("model") or "bundled sample model")).name
                    + (f" ({m['model_arch']})" if m.get("model_arch") else ""))),
        ("methods · layers", e(f"{', '.join(cfg.get('methods') or [])} · {' | '.join(cfg.get('layers') or [])}")),
        ("thresholds", e(", ".join(f"{t:g}" for t in cfg.get("thresholds") or []))),
        ("fill · curve steps · seed", e(f"{cfg.get('fill')} · {cfg.get('curve_steps')} · {cfg.get('seed')}")),
        ("data", e(f"{len(m.get('scenes') or [])} scene(s), {m.get('tiles')} tiles, T = {'/'.join(m.get('target_source') or [])}")),
        ("time", e(f"{m.get('seconds')} s on {m.get('device')}, {m.get('model_forward_images')} model forwards")),
        ("versions", e(f"segxai {m.get('segxai_version')}, torch {m.get('torch')}, python {m.get('python')}")),
    ])
    parts = [f'<section id="{anchor}"><h2>Faithfulness study: {e(study.name)} ({e(study.command)})</h2>', info, note, figs,
             "<h3>Summary (mean ± std over tiles)</h3>", overview_table(study.summary)]
    if study.best:
        parts += ["<h3>Best method per threshold</h3>", best_table(study.best)]
    parts.append(sanity_block(study.summary))
    return "\n".join(parts) + "</section>"


def _pm(r: Optional[dict], metric: str) -> Cell:
    if not r:
        return "–", None
    mean, std = fnum(r.get(f"{metric}_mean")), fnum(r.get(f"{metric}_std"))
    if mean is None:
        return "–", None
    return (num(mean) + (f" <span class=\"muted\">± {num(std)}</span>" if std is not None else "")), mean


OVERVIEW = (("M1", "confidence", "M1 conf"), ("M1", "confidence_drop", "M1 drop ↑"), ("M2", "confidence", "M2 conf"),
            ("M2", "confidence_drop", "M2 drop ↓"), ("M3", "entropy", "M3 entropy ↓"), ("M1", "iou_change", "M1 ΔIoU ↓"),
            ("M2", "dice_explained", "Dice expl. ↑"), ("M1", "deletion_auc", "del. AUC ↓"),
            ("M1", "insertion_auc", "ins. AUC ↑"))


def overview_table(summary: Sequence[dict[str, Any]]) -> str:
    from segxai_cli.evaluation.tables import overview_rows

    rows = []
    for o in overview_rows(summary):
        rows.append([(e(o["method"]), None), (e(o["layer"]), None), (num(o["threshold"], 2), fnum(o["threshold"]))]
                    + [_pm(o[mode], metric) for mode, metric, _ in OVERVIEW]
                    + [(num((o["any"] or {}).get("n")), fnum((o["any"] or {}).get("n")))])
    return table(["method", "layer", "t"] + [h for _, _, h in OVERVIEW] + ["n"], rows, text_cols=2)


def best_table(best: Sequence[dict[str, Any]]) -> str:
    rows = [[(e(b["mode"]), None), (e(b["layer"]), None), (num(b["threshold"], 2), fnum(b["threshold"])),
             (f"<b>{e(b['method'])}</b>", None), (e(b["criterion"]), None),
             (num(b["confidence"]), fnum(b["confidence"])), (num(b["entropy"]), fnum(b["entropy"])), (num(b["n"]), fnum(b["n"]))]
            for b in best]
    return table(["mode", "layer", "t", "best method", "criterion", "confidence", "entropy", "n"], rows, text_cols=2)


def sanity_block(summary: Sequence[dict[str, Any]]) -> str:
    """The parameter-randomisation check: Spearman of each method's maps with a re-initialised model's."""
    seen, rows = set(), []
    for r in summary:
        key = (r["method"], r["layer"])
        rho = fnum(r.get("sanity_spearman_mean"))
        if key in seen or rho is None:
            continue
        seen.add(key)
        ok = abs(rho) < SANITY_MAX_RHO
        verdict = ('<span class="pass">passes: depends on the learned weights</span>' if ok else
                   '<span class="fail">fails: nearly the same map with random weights</span>')
        rows.append([(e(r["method"]), None), (e(r["layer"]), None), _pm(r, "sanity_spearman"), (verdict, float(ok))])
    if not rows:
        return ""
    return ("<h3>Sanity check (model-parameter randomisation)</h3>"
            f"<p class=\"muted\">Spearman rank correlation between each method's maps for the trained model and for the "
            f"same architecture with re-initialised weights; a method passes when |ρ| &lt; {SANITY_MAX_RHO:g}.</p>"
            + table(["method", "layer", "Spearman ρ ↓", "verdict"], rows, text_cols=2))

"""The study's files, built by the library (so the Python API writes the same report as the CLI).

For a CSV path ``rep.csv``: ``rep.csv`` (tidy rows), ``rep_summary.csv`` (mean/std/95 % interval per
method × layer × mode × threshold | budget), ``rep.png`` (plot), ``rep.json`` (the run: options, seed,
model checksum, timings); for a threshold sweep ``rep_best.csv`` (best method per threshold and per
budget for M1/M2/M3, with the runner-up test); with fixed budgets ``rep_budget.png``; with several
methods ``rep_paired.csv`` (paired tests of every pair); with several scenes ``rep_scenes.csv`` (the
study stratified by scene); with ``--sanity`` ``rep_sanity.csv`` (tidy), ``rep_sanity_summary.csv``,
``rep_sanity_verdict.csv`` and ``rep_sanity.png``; with deletion/insertion curves ``rep_curves.csv``
(the mean curves per method × layer).
Everything written is deterministic (fixed column order, sorted groups, fixed float formatting) and
atomic (temp name, then rename).
"""

from __future__ import annotations

import csv
import io
import json
import math
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from segxai_cli._version import __version__
from segxai_cli.errors import OutputError
from segxai_cli.evaluation.config import COLUMNS, SANITY_COLUMNS, StudyConfig
from segxai_cli.evaluation.compare import BEST_COLUMNS, PAIRED_COLUMNS, best_methods, paired_comparisons
from segxai_cli.evaluation.summary import (
    CURVE_COLUMNS, VERDICT_COLUMNS, curve_summary, budget_rows, sanity_summary_columns, sanity_verdicts, scenes_columns, summarize,
    summarize_sanity, summarize_scenes, summary_columns, threshold_rows,
)
from segxai_cli.files import atomic_write_text, check_writable_folder


# ----------------------------------------------------------------------------- paths
def report_paths(output: str | Path, summary: Optional[Path] = None, plot: Optional[Path] = None,
                 best: bool = False, best_path: Optional[Path] = None, *, budgets: bool = False,
                 paired: bool = False, scenes: bool = False, sanity: bool = False,
                 curves: bool = False) -> dict[str, Path]:
    """The files of a report named after its tidy CSV (see the module docstring); the keyword flags
    add the files of fixed budgets, several methods, several scenes and the sanity check."""
    output = Path(output)
    stem = output.with_suffix("") if output.suffix.lower() == ".csv" else output
    paths = {
        "csv": output,
        "summary": Path(summary) if summary else stem.parent / f"{stem.name}_summary.csv",
        "plot": Path(plot) if plot else stem.parent / f"{stem.name}.png",
        "meta": stem.parent / f"{stem.name}.json",
    }
    if best:
        paths["best"] = Path(best_path) if best_path else stem.parent / f"{stem.name}_best.csv"
    extra = {"budget_plot": (budgets, "_budget.png"), "paired": (paired, "_paired.csv"),
             "scenes": (scenes, "_scenes.csv"), "sanity": (sanity, "_sanity.csv"),
             "sanity_summary": (sanity, "_sanity_summary.csv"), "sanity_verdict": (sanity, "_sanity_verdict.csv"),
             "sanity_plot": (sanity, "_sanity.png"), "curves": (curves, "_curves.csv")}
    paths.update({k: stem.parent / f"{stem.name}{suffix}" for k, (on, suffix) in extra.items() if on})
    return paths


def check_report_paths(paths: dict[str, Path], overwrite: bool) -> None:
    """Refuse before any work: missing folders, existing files without ``overwrite``, two outputs on one file."""
    if len(set(paths.values())) != len(paths):
        raise OutputError("two outputs would be written to the same file; choose distinct --summary/--plot paths")
    for p in paths.values():
        folder = p.parent if str(p.parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{p}: folder {folder} does not exist")
        if p.exists() and not overwrite:
            raise OutputError(f"{p}: already exists (use --overwrite to replace it)")
    for folder in {p.parent for p in paths.values()}:
        check_writable_folder(folder if str(folder) else Path("."))


# ----------------------------------------------------------------------------- the report
@dataclass
class StudyReport:
    """What :func:`write_report` wrote and computed."""

    paths: dict[str, Path]
    summary: list[dict[str, Any]]
    by_layer: list[dict[str, Any]]
    best: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    paired: list[dict[str, Any]] = field(default_factory=list)
    scenes: list[dict[str, Any]] = field(default_factory=list)
    sanity: list[dict[str, Any]] = field(default_factory=list)  # the sanity summary
    verdicts: list[dict[str, Any]] = field(default_factory=list)


def write_report(result, cfg: StudyConfig, paths: dict[str, Path], *, command: str = "evaluate",
                 sweep: bool = False, device: str = "auto", seconds: float | None = None) -> StudyReport:
    """Summarise a :class:`~segxai_cli.evaluation.run.StudyResult` and write every file of the report.

    Files that ``paths`` does not name are not written (see :func:`report_paths`)."""
    from segxai_cli.evaluation.plots import plot_budget, plot_evaluate, plot_sweep

    order, seed, nb = list(cfg.methods), cfg.seed, cfg.bootstrap
    summ = summarize(result.rows, order=order, layer_order=cfg.layers, seed=seed, n_boot=nb)
    by_layer = summarize(threshold_rows(result.rows), by=("method", "layer", "mode"), order=order,
                         layer_order=cfg.layers, seed=seed, n_boot=nb)
    rep = StudyReport(paths, summ, by_layer)
    if sweep:
        rep.best = {m: best_methods(summ, m, result.rows, "threshold", seed, nb)
                    + best_methods(summ, m, result.rows, "budget", seed, nb) for m in cfg.modes}
    sources = sorted({s["target_source"] for s in result.scenes})
    rep.meta = _meta(result, cfg, paths, command, device, seconds, sources)
    write_csv(result.rows, paths["csv"])
    write_csv(summ, paths["summary"], summary_columns())
    title = f"segxai {command}: {len(result.scenes)} scene(s), {rep.meta['tiles']} tiles, T = {'/'.join(sources)}"
    if sweep:
        write_csv([b for m in cfg.modes for b in rep.best[m]], paths["best"], BEST_COLUMNS)
        plot_sweep(threshold_rows(summ), paths["plot"], title=title)
    else:
        ts = ", ".join(f"{t:g}" for t in cfg.thresholds)
        plot_evaluate(by_layer, paths["plot"], title=f"{title}, t = {ts}")
    if "budget_plot" in paths:
        plot_budget(budget_rows(summ), paths["budget_plot"], title=title)
    if "paired" in paths:
        rep.paired = paired_comparisons(result.rows, order, seed, nb)
        write_csv(rep.paired, paths["paired"], PAIRED_COLUMNS)
    if "scenes" in paths:
        rep.scenes = summarize_scenes(result.rows, order=order, layer_order=cfg.layers, seed=seed, n_boot=nb)
        write_csv(rep.scenes, paths["scenes"], scenes_columns())
    if "sanity" in paths:
        _write_sanity(rep, result, cfg, paths, title)
    if "curves" in paths and result.curves:
        write_csv(curve_summary(result.curves, order, cfg.layers), paths["curves"], CURVE_COLUMNS)
    write_json(rep.meta, paths["meta"])
    return rep


def _write_sanity(rep: StudyReport, result, cfg: StudyConfig, paths: dict[str, Path], title: str) -> None:
    from segxai_cli.evaluation.plots import plot_sanity

    rep.sanity = summarize_sanity(result.sanity_rows, list(cfg.methods), cfg.layers, cfg.seed, cfg.bootstrap)
    rep.verdicts = sanity_verdicts(rep.sanity, cfg.sanity_threshold)
    write_csv(result.sanity_rows, paths["sanity"], SANITY_COLUMNS)
    write_csv(rep.sanity, paths["sanity_summary"], sanity_summary_columns())
    write_csv(rep.verdicts, paths["sanity_verdict"], VERDICT_COLUMNS)
    plot_sanity(rep.sanity, paths["sanity_plot"], [g["group"] for g in result.sanity_groups], title=title)
    rep.meta["sanity"] = {"groups": result.sanity_groups, "threshold": cfg.sanity_threshold,
                          "verdicts": {f"{v['method']}@{v['layer']}": v["verdict"] for v in rep.verdicts}}


def _meta(result, cfg: StudyConfig, paths, command: str, device: str, seconds, sources) -> dict[str, Any]:
    import torch

    return {
        "command": command, "argv": _argv(), "config": cfg.as_dict(),
        "model": Path(result.model["file"]).name if result.model.get("file") else None,
        "model_sha256": result.model.get("sha256"), "model_arch": result.model.get("arch"),
        "scenes": result.scenes, "errors": [{"scene": s, "error": m} for s, m in result.errors],
        "rows": len(result.rows), "tiles": sum(s["tiles"] - s["skipped_nodata_tiles"] for s in result.scenes),
        "skipped_nodata_tiles": sum(s["skipped_nodata_tiles"] for s in result.scenes),
        "empty_target_rows": sum(1 for r in result.rows if r["empty_target"]),
        "target_source": sources, "model_forward_images": result.forwards,
        "deduplicated_inputs": result.deduplicated,
        "seconds": round(result.seconds if seconds is None else seconds, 2),
        "device": str(device), "torch": torch.__version__, "python": platform.python_version(),
        "segxai_version": __version__, "outputs": {k: str(v) for k, v in paths.items()},
    }


def _argv() -> list[str]:
    """The command line, with local paths reduced to file names (records never hold a machine's paths)."""
    return [Path(a).name if ("/" in a and Path(a).is_absolute()) else a for a in sys.argv[1:]]


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
    if key in ("scene", "method", "layer", "mode", "target_source", "object", "test", "randomized", "verdict",
               "runner_up", "method_a", "method_b", "winner", "metric", "better", "criterion", "least_affected_group"):
        return v if v != "" or key in ("scene", "method", "layer", "mode", "target_source") else None
    if v in ("True", "False"):
        return v == "True"
    if v == "":
        return math.nan
    try:
        f = float(v)
    except ValueError:
        return v
    ints = ("tile", "row_off", "col_off", "n_valid", "n_target", "target_class", "n", "n_empty_target", "n_tiles",
            "step", "n_scenes", "n_constant_map")
    return int(f) if key in ints else f


def write_json(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n")
    return path


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
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

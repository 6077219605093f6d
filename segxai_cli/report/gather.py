"""What a report shows, read from an output folder: explain's records and manifest, study files.

Everything comes from the files segxai wrote — nothing is recomputed from rasters — so a report can
be rebuilt at any time (after more shards finished, after an evaluation was added to the folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from segxai_cli.errors import InputError
from segxai_cli.evaluation.report import read_csv
from segxai_cli.explain.records import CSV_NAME, MANIFEST_NAME, read_record
from segxai_cli.explain.results import RECORD_SUFFIX
from segxai_cli.explain.run_outputs.qgis_project import PROJECT_NAME

STUDY_COMMANDS = ("evaluate", "threshold-sweep")


@dataclass
class Scene:
    """One explained scene: its record and the quicklooks it lists (file names in the folder)."""

    name: str
    record: dict[str, Any]
    panel: Optional[str] = None
    quicklooks: dict[str, str] = field(default_factory=dict)  # band name -> file

    @property
    def row(self) -> dict[str, Any]:
        return self.record.get("csv_row") or {}

    @property
    def bands(self) -> list[str]:
        opts = self.record.get("options") or {}
        methods, layers = list(opts.get("methods") or []), list(opts.get("layers") or [])
        return methods if len(layers) <= 1 else [f"{m}@{la}" for la in layers for m in methods]


@dataclass
class Study:
    """One evaluate / threshold-sweep report: its JSON record and the CSVs beside it."""

    name: str
    meta: dict[str, Any]
    summary: list[dict[str, Any]]
    best: list[dict[str, Any]] = field(default_factory=list)
    curves: list[dict[str, Any]] = field(default_factory=list)

    @property
    def command(self) -> str:
        return str(self.meta.get("command"))


@dataclass
class ReportData:
    folder: Path
    manifest: Optional[dict[str, Any]]
    scenes: list[Scene]
    studies: list[Study]
    qgis_project: Optional[str]
    scenes_csv: Optional[str]


def gather(folder: Path) -> ReportData:
    """Read every segxai output in ``folder``; an :class:`InputError` when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such folder")
    scenes = [_scene(rec) for p in sorted(folder.glob(f"*{RECORD_SUFFIX}")) if (rec := read_record(p)) is not None]
    studies = [s for p in sorted(folder.glob("*.json")) if (s := _study(p)) is not None]
    if not scenes and not studies:
        raise InputError(f"{folder}: no segxai outputs (no scene records *{RECORD_SUFFIX}, no evaluate or "
                         "threshold-sweep JSON)")
    manifest = _json(folder / MANIFEST_NAME)
    return ReportData(folder, manifest, scenes, studies,
                      PROJECT_NAME if (folder / PROJECT_NAME).is_file() else None,
                      CSV_NAME if (folder / CSV_NAME).is_file() else None)


def _json(path: Path) -> Optional[dict[str, Any]]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _scene(rec: dict[str, Any]) -> Scene:
    ql = (rec.get("published") or {}).get("quicklooks") or {}
    return Scene(str(rec.get("scene")), rec, ql.get("panel"), dict(ql.get("bands") or {}))


def _study(path: Path) -> Optional[Study]:
    """A study's JSON record (``rep.json``) with ``rep_summary.csv`` beside it, else None."""
    meta = _json(path)
    if not meta or meta.get("command") not in STUDY_COMMANDS or "config" not in meta:
        return None
    stem, outputs = path.stem, meta.get("outputs") or {}

    def beside(key: str, default: str) -> Optional[Path]:
        name = Path(str(outputs[key])).name if outputs.get(key) else default
        p = path.parent / name
        return p if p.is_file() else None

    summary = beside("summary", f"{stem}_summary.csv")
    if summary is None:
        return None
    best, curves = beside("best", f"{stem}_best.csv"), beside("curves", f"{stem}_curves.csv")
    return Study(stem, meta, read_csv(summary), read_csv(best) if best else [], read_csv(curves) if curves else [])

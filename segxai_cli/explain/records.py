"""The scene record (written last: the scene is complete) and the run's manifest and CSV.

``segxai_manifest.json`` and ``segxai_scenes.csv`` — and the run output kinds of
:mod:`segxai_cli.explain.run_outputs` (the QGIS project, the STAC catalog) — are rebuilt at the end of every run from
*all* scene records in the output folder, so concurrent shards writing one folder never lose rows.
"""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from segxai_cli._version import __version__
from segxai_cli.explain.options import ExplainOptions
from segxai_cli.explain.run_outputs import RUN_OUTPUTS, write_run_outputs
from segxai_cli.explain.results import RECORD_SUFFIX, OutputPaths, SceneResult, rounded
from segxai_cli.files import atomic_write_text
from segxai_cli.raster.source import RasterSource

MANIFEST_NAME = "segxai_manifest.json"
CSV_NAME = "segxai_scenes.csv"
RECORD_FORMAT = "segxai-scene"
RUN_FILES = (MANIFEST_NAME, CSV_NAME, *(kind.file_name for kind in RUN_OUTPUTS))  # rebuilt at the end of every run


def environment(device: Optional[str] = None) -> dict[str, Any]:
    """Versions of everything that shaped the numbers (imported lazily: only when writing)."""
    import numpy as np
    import rasterio
    import torch

    env = {
        "segxai": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }
    try:
        from importlib.metadata import version

        env["segmentation_models_pytorch"] = version("segmentation-models-pytorch")
    except Exception:  # pragma: no cover
        pass
    if device and device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def csv_row(source: RasterSource, result: SceneResult, opts: ExplainOptions, width: int, height: int) -> dict:
    s = result.stats
    row = {
        "scene": source.stem,
        "input": str(source),
        "width": width,
        "height": height,
        "tiles": s.tiles,
        "tiles_computed": s.tiles_computed,
        "tiles_nodata": s.tiles_nodata,
        "tiles_outside_region": s.tiles_outside_region,
        "tiles_empty_region": s.tiles_empty_region,
        "seconds": round(result.seconds, 3),
        "megapixels_per_s": round(width * height / 1e6 / max(result.seconds, 1e-9), 4),
        "valid_fraction": rounded(s.valid_pixels / (width * height)),
        "coverage": rounded(s.class_pixels / s.valid_pixels) if s.valid_pixels else None,
        "class": opts.class_name,
        "methods": ",".join(opts.methods),
        "layer": ",".join(opts.layers),
        "normalize": opts.normalize,
        "region": opts.region.describe(),
    }
    for name in opts.band_names:
        row[f"mean_{name}"] = rounded(result.mean_saliency.get(name))
    row["saliency"] = result.outputs.saliency.name
    row["prediction"] = result.outputs.prediction.name
    return row


def write_record(paths: OutputPaths, source: RasterSource, result: SceneResult, opts: ExplainOptions,
                 model: dict[str, Any], options_key: str, crs, width: int, height: int,
                 bands: Sequence[int] = ()) -> None:
    """The completion record: written last, atomically."""
    s = result.stats
    names = opts.band_names
    rec = {
        "format": RECORD_FORMAT,
        "format_version": 1,
        "scene": source.stem,
        "input": source.href,
        "size": [width, height],
        **({"input_bands": [int(b) for b in bands]} if bands else {}),  # as read (band names resolved)
        "crs": crs.to_string() if crs is not None else None,
        "outputs": {k: Path(v).name for k, v in paths.files.items()},
        "options": opts.record(),
        "options_key": options_key,
        "model": model,
        "stats": {
            "tiles": s.tiles, "tiles_computed": s.tiles_computed, "tiles_nodata": s.tiles_nodata,
            "tiles_outside_region": s.tiles_outside_region, "tiles_empty_region": s.tiles_empty_region,
            "valid_pixels": s.valid_pixels, "class_pixels": s.class_pixels,
            "scene_min": {n: rounded(v) for n, v in zip(names, s.minimum)},
            "scene_max": {n: rounded(v) for n, v in zip(names, s.maximum)},
            "mean_saliency": {k: rounded(v) for k, v in result.mean_saliency.items()},
        },
        "timings": {"seconds": round(result.seconds, 3), "pipeline_seconds": round(s.seconds, 3),
                    "compute_seconds": round(s.compute_seconds, 3),
                    "read_wait_seconds": round(s.read_wait_seconds, 3),
                    "write_wait_seconds": round(s.write_wait_seconds, 3)},
        "warnings": result.warnings,
        **({"published": result.published} if result.published else {}),
        "environment": environment(opts.device),
        "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "csv_row": csv_row(source, result, opts, width, height),
    }
    atomic_write_text(paths.record, json.dumps(rec, indent=2, default=str) + "\n")


def read_record(path: Path) -> Optional[dict]:
    """A scene record (``<stem>_saliency.json``), or None if absent or unreadable."""
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("format") == RECORD_FORMAT else None


def is_complete(paths: OutputPaths) -> Optional[dict]:
    """The record if the scene's outputs are complete (record written last, all files present)."""
    rec = read_record(paths.record)
    if rec is None:
        return None
    return rec if all(p.exists() for p in paths.all()) else None


def write_run_summary(outdir: Path, results: Sequence[SceneResult], opts: Optional[ExplainOptions],
                      model: Optional[dict[str, Any]], started: float, shard: Optional[tuple[int, int]],
                      inputs: Sequence[str]) -> tuple[Optional[Path], Optional[Path]]:
    """Regenerate ``segxai_scenes.csv``, ``segxai_manifest.json`` and the run outputs (``segxai.qgs``)
    from every scene record in ``outdir`` (atomically): rows of other shards/runs are kept, this
    run's details are added.
    Nothing is written while the folder holds no complete scene."""
    records = [rec for p in sorted(outdir.glob(f"*{RECORD_SUFFIX}")) if (rec := read_record(p)) is not None]
    if not records:
        return None, None
    rows = [r["csv_row"] for r in records if isinstance(r.get("csv_row"), dict)]
    csv_path = atomic_write_text(outdir / CSV_NAME, _csv_text(rows))
    manifest = {
        "format": "segxai-manifest",
        "format_version": 1,
        "segxai_version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "last_run": {
            "inputs": list(inputs),
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "options": opts.record() if opts else None,
            "model": model,
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 3),
            "results": [r.to_dict() for r in results],
            "environment": environment(opts.device if opts else None),
        },
        "scenes": [
            {k: rec.get(k) for k in ("scene", "input", "size", "crs", "outputs", "options", "options_key", "model",
                                     "stats", "timings", "completed")}
            for rec in records
        ],
    }
    man_path = atomic_write_text(outdir / MANIFEST_NAME, json.dumps(manifest, indent=2, default=str) + "\n")
    write_run_outputs(outdir, records)
    return man_path, csv_path


def _csv_text(rows: Sequence[dict]) -> str:
    columns: list[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    # method columns after the fixed ones, saliency/prediction names last
    tail = [c for c in ("saliency", "prediction") if c in columns]
    columns = [c for c in columns if c not in tail] + tail
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()

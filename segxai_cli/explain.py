"""Scene in, files out: the Python API behind ``segxai explain`` (notebooks call it directly).

::

    from segxai_cli import explain_scene, explain_scenes

    r = explain_scene("sample_tiles/scene_01.tif", "out/")                 # bundled model, Seg-Grad-CAM
    r.saliency, r.prediction, r.stats.megapixels_per_s
    run = explain_scenes(["scenes/*.tif"], "out/", model="my.pt", methods=["gradcam", "hirescam"],
                         skip_existing=True, shard=(1, 4))

Outputs per input ``<stem>`` in ``outdir`` (see docs/explain.md):

- ``<stem>_saliency.tif`` — float32 COG, one band per method (band description = method name),
  values in [0, 1] after per-scene min-max, NaN = nodata; tags: model, layer, class, normalisation…
- ``<stem>_saliency.qml`` — QGIS heatmap style (auto-loaded by QGIS);
- ``<stem>_prediction.tif`` — uint8 COG of class indexes with a colour table, 255 = nodata;
  ``<stem>_prediction.qml`` — QGIS paletted style with the class names;
- ``<stem>_saliency.json`` — the scene's record, written **last**: its presence means the scene is
  complete (``skip_existing`` looks for it).

and per run ``segxai_manifest.json`` and ``segxai_scenes.csv``, regenerated at the end of every run
from all scene records in ``outdir`` — so concurrent shards writing one folder never lose rows.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import platform
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from segxai_cli import __version__
from segxai_cli.device import resolve_device
from segxai_cli.errors import InputError, OutputError, SegxaiError
from segxai_cli.model.checkpoint import ModelInfo, load_checkpoint, require_band_stats
from segxai_cli.raster.reader import NoCRSWarning, open_raster
from segxai_cli.raster.regions import MaskRegion, RegionSource, RegionWarning, bbox_region, load_vector
from segxai_cli.raster.style import class_colormap, write_class_style, write_heatmap_style
from segxai_cli.files import atomic_write_text, check_writable_folder, remove_stale_sidecars, remove_stale_temps
from segxai_cli.raster.writer import COMPRESSIONS, StreamingWriter, minmax_scale
from segxai_cli.tiling.grid import overlap_from_fraction
from segxai_cli.tiling.pipeline import NORMALIZE_MODES, PRED_NODATA, PipelineConfig, SceneStats, run_scene

log = logging.getLogger("segxai")

DEFAULT_METHODS = ("gradcam",)
DEFAULT_LAYER = "decoder.last"
SALIENCY_NODATA = float("nan")
GDAL_CACHE_MB = 128
MANIFEST_NAME = "segxai_manifest.json"
CSV_NAME = "segxai_scenes.csv"
RECORD_FORMAT = "segxai-scene"

ModelArg = Union[None, str, Path, tuple]


# ----------------------------------------------------------------------------- results
@dataclass
class OutputPaths:
    """The files one input produces in ``outdir``."""

    saliency: Path
    saliency_style: Path
    prediction: Path
    prediction_style: Path
    record: Path

    @classmethod
    def for_stem(cls, outdir: Path, stem: str) -> "OutputPaths":
        return cls(
            saliency=outdir / f"{stem}_saliency.tif",
            saliency_style=outdir / f"{stem}_saliency.qml",
            prediction=outdir / f"{stem}_prediction.tif",
            prediction_style=outdir / f"{stem}_prediction.qml",
            record=outdir / f"{stem}_saliency.json",
        )

    def all(self) -> list[Path]:
        return [self.saliency, self.saliency_style, self.prediction, self.prediction_style, self.record]


@dataclass
class SceneResult:
    """What happened to one input."""

    input: Path
    status: str  # "done" | "skipped" | "failed"
    outputs: Optional[OutputPaths] = None
    error: Optional[str] = None
    stats: Optional[SceneStats] = None
    mean_saliency: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def saliency(self) -> Optional[Path]:
        return self.outputs.saliency if self.outputs else None

    @property
    def prediction(self) -> Optional[Path]:
        return self.outputs.prediction if self.outputs else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input": str(self.input), "status": self.status}
        if self.error:
            d["error"] = self.error
        if self.outputs:
            d["outputs"] = {k: str(v) for k, v in asdict(self.outputs).items()}
        if self.stats:
            d["tiles"] = self.stats.tiles
            d["tiles_computed"] = self.stats.tiles_computed
            d["seconds"] = round(self.seconds, 3)
            d["megapixels_per_s"] = round(self.stats.width * self.stats.height / 1e6 / self.seconds, 4) if self.seconds else None
        if self.mean_saliency:
            d["mean_saliency"] = {k: _round(v) for k, v in self.mean_saliency.items()}
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d


@dataclass
class RunResult:
    """What happened to every input of :func:`explain_scenes`."""

    scenes: list[SceneResult]
    outdir: Path
    seconds: float = 0.0
    manifest: Optional[Path] = None
    csv: Optional[Path] = None

    @property
    def failed(self) -> list[SceneResult]:
        return [s for s in self.scenes if s.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> dict[str, Any]:
        counts = {k: sum(1 for s in self.scenes if s.status == k) for k in ("done", "skipped", "failed")}
        return {
            "segxai_version": __version__,
            "outdir": str(self.outdir),
            **counts,
            "seconds": round(self.seconds, 3),
            "manifest": str(self.manifest) if self.manifest else None,
            "csv": str(self.csv) if self.csv else None,
            "scenes": [s.to_dict() for s in self.scenes],
        }


# ----------------------------------------------------------------------------- options
@dataclass
class ExplainOptions:
    """Every option of an explain run, resolved against the model (recorded in the outputs)."""

    methods: list[str]
    layers: list[str]
    target_class: int
    class_name: str
    bands: list[int]
    tile_size: int
    overlap: float
    normalize: str
    use_probs: bool
    batch_size: int
    device: str
    autocast: Optional[str]
    region: str  # "predicted" | "mask:<path>" | "vector:<path>[:layer]" | "bbox:..."
    compress: str

    def key(self, info: ModelInfo) -> str:
        """Fingerprint of what determines the outputs (not batch size, device or compression)."""
        d = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "device", "compress")}
        d["model_sha256"] = info.sha256
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def resolve_methods(methods: Union[str, Sequence[str], None]) -> list[str]:
    """``["gradcam", "hirescam"]``, ``"gradcam,hirescam"``, ``"all"`` or ``"all-gradient"``."""
    from segxai_cli.cam import GRADIENT_METHODS, METHODS

    if methods is None:
        methods = list(DEFAULT_METHODS)
    if isinstance(methods, str):
        methods = [methods]
    out: list[str] = []
    for item in methods:
        for m in str(item).split(","):
            m = m.strip().lower()
            if not m:
                continue
            if m == "all":
                out.extend(METHODS)
            elif m in ("all-gradient", "gradient"):
                out.extend(GRADIENT_METHODS)
            elif m in METHODS:
                out.append(m)
            else:
                raise SegxaiError(
                    f"unknown method {m!r}; valid: {', '.join(METHODS)}, all, all-gradient"
                )
    if not out:
        raise SegxaiError("no method given")
    return list(dict.fromkeys(out))


def resolve_class(info: ModelInfo, cls: Union[int, str, None]) -> tuple[int, str]:
    """A class index or name from the checkpoint → (index, name)."""
    names = list(info.class_names or [])
    n = max(info.classes, 2)
    if cls is None:
        idx = int(info.target_class)
    elif isinstance(cls, int) or (isinstance(cls, str) and cls.strip().lstrip("-").isdigit()):
        idx = int(cls)
    else:
        lowered = [c.lower() for c in names]
        if str(cls).lower() not in lowered:
            raise SegxaiError(f"--class {cls!r}: not a class of this model (classes: {_class_list(names)})")
        idx = lowered.index(str(cls).lower())
    if not 0 <= idx < n:
        raise SegxaiError(f"--class {cls}: out of range; this model has {n} classes ({_class_list(names)})")
    return idx, (names[idx] if idx < len(names) else f"class_{idx}")


def _class_list(names: Sequence[str]) -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(names))


def resolve_model(model: ModelArg, device: torch.device) -> tuple[torch.nn.Module, ModelInfo]:
    """None → bundled model; a path → checkpoint; ``(module, ModelInfo)`` → used as is."""
    if isinstance(model, tuple) and len(model) == 2:
        module, info = model
        return module.to(device).eval(), info
    return load_checkpoint(model, device=device)


def parse_shard(spec: Union[str, tuple, None]) -> Optional[tuple[int, int]]:
    """``"K/N"`` (1-based: ``1/4`` … ``4/4``) → (K, N)."""
    if spec is None:
        return None
    if isinstance(spec, tuple):
        k, n = spec
    else:
        try:
            k, n = (int(v) for v in str(spec).split("/"))
        except ValueError:
            raise SegxaiError(f"--shard {spec!r}: expected K/N, e.g. 1/4 (K from 1 to N)") from None
    if not (n >= 1 and 1 <= k <= n):
        raise SegxaiError(f"--shard {k}/{n}: K must be between 1 and N")
    return int(k), int(n)


def expand_inputs(items: Iterable[Union[str, Path]]) -> tuple[list[Path], list[SceneResult]]:
    """Scenes from files, folders and globs (rules in :mod:`segxai_cli.raster.inputs`), plus a failure
    for each folder or glob that gave none. A missing file fails later, like any other bad input."""
    from segxai_cli.raster.inputs import expand_paths

    files, problems = expand_paths(items)
    return files, [SceneResult(Path(spec), "failed", error=f"{spec}: {reason}") for spec, reason in problems]


# ----------------------------------------------------------------------------- one scene
def explain_scene(
    input: Union[str, Path],
    outdir: Union[str, Path],
    model: ModelArg = None,
    *,
    methods: Union[str, Sequence[str], None] = None,
    layer: Union[str, Sequence[str], None] = None,
    target_class: Union[int, str, None] = None,
    bands: Optional[Sequence[int]] = None,
    tile_size: Optional[int] = None,
    overlap: float = 0.25,
    normalize: str = "scene",
    use_probs: bool = False,
    batch_size: Optional[int] = None,
    device: Union[str, torch.device] = "auto",
    autocast: Optional[str] = None,
    region_mask: Union[str, Path, None] = None,
    vector: Union[str, Path, None] = None,
    vector_layer: Optional[str] = None,
    bbox: Optional[Sequence[float]] = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    compress: str = "deflate",
    progress: bool = False,
    write_summary: bool = True,
) -> SceneResult:
    """Explain one GeoTIFF scene and write its outputs to ``outdir`` (see the module docstring).

    Raises :class:`~segxai_cli.errors.SegxaiError` for user errors (bad input, existing outputs…).
    ``model``: None (bundled sample model), a checkpoint path, or ``(module, ModelInfo)``.
    ``normalize``: ``scene`` (default: raw maps stitched, one min-max per scene), ``tile``
    (per-tile min-max before stitching: shows seams) or ``none`` (raw blended values).
    ``region_mask`` may contain ``{stem}`` (replaced by the input's file stem).
    """
    dev = resolve_device(device)
    net, info = resolve_model(model, dev)
    opts = _resolve_options(info, dev, methods, layer, target_class, bands, tile_size, overlap, normalize,
                            use_probs, batch_size, autocast, region_mask, vector, vector_layer, bbox, compress)
    _check_layers(net, opts.layers)
    outdir = prepare_outdir(outdir)
    result = _explain_one(Path(input), outdir, net, info, opts, dev, region_mask=region_mask, vector=vector,
                          vector_layer=vector_layer, bbox=bbox, overwrite=overwrite,
                          skip_existing=skip_existing, progress=progress)
    if write_summary:
        write_run_summary(outdir, [result], opts, info, time.time() - result.seconds, None, [str(input)])
    return result


def _resolve_options(info, dev, methods, layer, target_class, bands, tile_size, overlap, normalize, use_probs,
                     batch_size, autocast, region_mask, vector, vector_layer, bbox, compress) -> ExplainOptions:
    methods = resolve_methods(methods)
    layers = [layer] if isinstance(layer, str) else list(layer or [DEFAULT_LAYER])
    cls_idx, cls_name = resolve_class(info, target_class)
    normalize = (normalize or "scene").lower()
    if normalize not in NORMALIZE_MODES:
        raise SegxaiError(f"--normalize {normalize!r}: expected one of {', '.join(NORMALIZE_MODES)}")
    tile = int(tile_size or info.tile_size or 256)
    if tile < 32 or tile % 32:
        raise SegxaiError(f"--tile-size {tile}: must be a multiple of 32 (the encoder downsamples by up to 32)")
    if not 0 <= float(overlap) < 0.9:
        raise SegxaiError(f"--overlap {overlap}: expected a fraction of the tile in [0, 0.9)")
    bands = [int(b) for b in (bands or info.bands or range(1, info.in_channels + 1))]
    if len(bands) != info.in_channels:
        raise SegxaiError(
            f"--bidx {','.join(map(str, bands))}: the model takes {info.in_channels} band(s), {len(bands)} selected"
        )
    if batch_size is None:
        batch_size = 16 if dev.type == "cuda" else 4
    if int(batch_size) < 1:
        raise SegxaiError("--batch-size must be at least 1")
    autocast = None if autocast in (None, "none", "", False) else str(autocast).lower()
    if autocast not in (None, "bf16", "fp16"):
        raise SegxaiError(f"--autocast {autocast!r}: expected none, bf16 or fp16")
    given = [n for n, v in (("--region-mask", region_mask), ("--vector", vector), ("--bbox", bbox)) if v]
    if len(given) > 1:
        raise SegxaiError(f"{' and '.join(given)}: give at most one region source")
    if region_mask:
        region = f"mask:{region_mask}"
    elif vector:
        region = f"vector:{vector}" + (f":{vector_layer}" if vector_layer else "")
    elif bbox:
        region = "bbox:" + ",".join(f"{float(v):g}" for v in bbox)
    else:
        region = "predicted"
    compress = (compress or "deflate").lower()
    if compress not in COMPRESSIONS:
        raise SegxaiError(f"--compress {compress!r}: expected one of {', '.join(COMPRESSIONS)}")
    require_band_stats(info)
    return ExplainOptions(
        methods=methods, layers=layers, target_class=cls_idx, class_name=cls_name, bands=bands, tile_size=tile,
        overlap=float(overlap), normalize=normalize, use_probs=bool(use_probs), batch_size=int(batch_size),
        device=str(dev), autocast=autocast, region=region, compress=compress,
    )


def _check_layers(net, layers: Sequence[str]) -> None:
    """Fail early (once, not per input) on a layer name the model does not have."""
    from segxai_cli.model.layers import resolve_layer

    for name in layers:
        resolve_layer(net, name)


def prepare_outdir(outdir: Union[str, Path]) -> Path:
    """Create ``outdir`` if needed and check that files can be created in it."""
    return check_writable_folder(outdir, create=True)


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


def _explain_one(path: Path, outdir: Path, net, info: ModelInfo, opts: ExplainOptions, dev: torch.device, *,
                 region_mask=None, vector=None, vector_layer=None, bbox=None, overwrite=False,
                 skip_existing=False, progress=False) -> SceneResult:
    # GDAL's block cache defaults to 5 % of the RAM and would fill with input blocks as the scene is
    # read: capped (globally, restored afterwards) so that memory does not grow with the scene size.
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
        return _explain_one_capped(path, outdir, net, info, opts, dev, region_mask=region_mask, vector=vector,
                                   vector_layer=vector_layer, bbox=bbox, overwrite=overwrite,
                                   skip_existing=skip_existing, progress=progress)


def _explain_one_capped(path: Path, outdir: Path, net, info: ModelInfo, opts: ExplainOptions, dev: torch.device, *,
                        region_mask=None, vector=None, vector_layer=None, bbox=None, overwrite=False,
                        skip_existing=False, progress=False) -> SceneResult:
    t0 = time.perf_counter()
    stem = path.stem
    paths = OutputPaths.for_stem(outdir, stem)
    result = SceneResult(path, "done", outputs=paths)

    # -- existing outputs: refuse / skip complete / redo incomplete
    existing = [p for p in paths.all() if p.exists()]
    if existing and not overwrite:
        if skip_existing:
            rec = is_complete(paths)
            if rec is not None:
                if rec.get("options_key") != opts.key(info):
                    raise OutputError(
                        f"{paths.saliency}: exists from a run with other options or another model; "
                        "use --overwrite to replace it or another output folder"
                    )
                result.status = "skipped"
                log.info("%s: complete outputs exist, skipped", path)
                return result
            log.info("%s: incomplete outputs from an interrupted run, redoing", path)
        else:
            raise OutputError(
                f"{existing[0]}: exists (use --overwrite to replace, or --skip-existing to skip complete scenes)"
            )
    for final in paths.all():
        remove_stale_temps(final)
    # The record is the completion marker: remove it before anything is replaced.
    paths.record.unlink(missing_ok=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NoCRSWarning)
        warnings.simplefilter("always", RegionWarning)
        src = open_raster(path)
    for w in caught:
        _warn(result, str(w.message), w.category)
    with src:
        _check_scene(src, info, opts)
        width, height = src.width, src.height
        crs, transform = src.crs, src.transform
        region, region_warnings = _region_source(src, path, opts, region_mask, vector, vector_layer, bbox)
        for msg in region_warnings:
            _warn(result, msg, RegionWarning)
        src_dtype = src.dtypes[0]
    if info.source_dtype and src_dtype != info.source_dtype:
        msg = (f"{path}: scene is {src_dtype} but the model was trained on {info.source_dtype} imagery; "
               "results may be meaningless")
        _warn(result, msg, UserWarning)

    cfg = PipelineConfig(
        tile=opts.tile_size, overlap=overlap_from_fraction(opts.tile_size, opts.overlap), bidx=opts.bands,
        stats=info.band_stats, methods=opts.methods, layers=opts.layers, target_class=opts.target_class,
        normalize=opts.normalize, use_probs=opts.use_probs, autocast=opts.autocast, batch_size=opts.batch_size,
        device=dev, n_classes=info.classes,
    )
    n_classes = max(info.classes, 2)
    class_names = list(info.class_names or [])[:n_classes]
    class_names += [f"class_{i}" for i in range(len(class_names), n_classes)]
    common_tags = {
        "segxai_version": __version__,
        "source": path.name,
        "model": Path(info.path).name if info.path else f"{info.arch}/{info.encoder}",
        "model_sha256": info.sha256 or "",
        "model_arch": f"{info.arch}/{info.encoder}",
        "target_class": opts.target_class,
        "target_class_name": opts.class_name,
    }
    sal_writer = StreamingWriter(
        paths.saliency, width=width, height=height, count=len(opts.methods), dtype="float32", crs=crs,
        transform=transform, nodata=SALIENCY_NODATA, descriptions=opts.methods,
        tags={**common_tags, "methods": ",".join(opts.methods), "layer": ",".join(opts.layers),
              "normalization": opts.normalize, "region": opts.region, "score": "probability" if opts.use_probs else "logit",
              "tile_size": opts.tile_size, "overlap": opts.overlap, "blending": "raised-cosine (Hann) ramps over overlaps",
              "nodata": "NaN"},
        band_tags=[{"method": m} for m in opts.methods], compress=opts.compress, overview_resampling="average",
    )
    pred_writer = StreamingWriter(
        paths.prediction, width=width, height=height, count=1, dtype="uint8", crs=crs, transform=transform,
        nodata=PRED_NODATA, descriptions=["class"], colormap=class_colormap(n_classes),
        tags={**common_tags, "class_names": json.dumps(class_names), "nodata_meaning": "255 = input nodata or not computed"},
        compress=opts.compress, overview_resampling="nearest",
    )

    def sink(row0: int, sal: np.ndarray, pred: np.ndarray) -> None:
        sal_writer.write(row0, sal)
        pred_writer.write(row0, pred)

    try:
        sal_writer.open()
        pred_writer.open()
        stats = run_scene(path, net, cfg, region=region, sink=sink, progress=progress, width=width, height=height)
        if stats.valid_pixels == 0:
            raise InputError(f"{path}: no valid pixels (the scene is entirely nodata); nothing written")
        scale = None
        if opts.normalize == "scene":
            scale = [minmax_scale(stats.minimum[m], stats.maximum[m]) for m in opts.methods]
            for m, (off, ratio) in zip(opts.methods, scale):
                result.mean_saliency[m] = stats.mean_raw[m] * ratio + off
            sal_writer.tags.update({f"scene_min_{m}": repr(stats.minimum[m]) for m in opts.methods})
            sal_writer.tags.update({f"scene_max_{m}": repr(stats.maximum[m]) for m in opts.methods})
        else:
            result.mean_saliency = dict(stats.mean_raw)
        pred_writer.finalize()
        sal_writer.finalize(scale)
    except BaseException:
        sal_writer.abort()
        pred_writer.abort()
        raise
    vmax = 1.0
    if opts.normalize == "none":
        finite = [v for v in stats.maximum.values() if math.isfinite(v)]
        vmax = stats.maximum[opts.methods[0]] if finite and math.isfinite(stats.maximum[opts.methods[0]]) else 1.0
    write_heatmap_style(paths.saliency, 0.0, vmax if vmax > 0 else 1.0, label=opts.methods[0])
    write_class_style(paths.prediction, class_names)
    for p in (paths.saliency_style, paths.prediction_style):
        remove_stale_sidecars(p)
    result.stats = stats
    result.seconds = time.perf_counter() - t0
    _write_record(paths, path, result, opts, info, crs, width, height)
    if stats.tiles_empty_region:
        log.info("%s: %d tile(s) had an empty target region (zero saliency there)", path, stats.tiles_empty_region)
    log.info(
        "%s: %d tiles (%d computed) in %.1f s, %.2f MP/s -> %s", path, stats.tiles, stats.tiles_computed,
        result.seconds, width * height / 1e6 / max(result.seconds, 1e-9), paths.saliency,
    )
    return result


def _warn(result: SceneResult, msg: str, category: type[Warning] = UserWarning) -> None:
    """Record a warning in the result and emit it (the CLI shows warnings as one log line)."""
    result.warnings.append(msg)
    warnings.warn(msg, category, stacklevel=3)


def _check_scene(src, info: ModelInfo, opts: ExplainOptions) -> None:
    bad = [b for b in opts.bands if b < 1 or b > src.count]
    if bad:
        raise InputError(
            f"{src.name}: has {src.count} band(s) but the model takes {info.in_channels} "
            f"(bands {','.join(map(str, opts.bands))}); select {info.in_channels} of its bands with -b/--bidx"
        )


def _region_source(src, path: Path, opts: ExplainOptions, region_mask, vector, vector_layer, bbox
                   ) -> tuple[Optional[RegionSource], list[str]]:
    msgs: list[str] = []
    if region_mask:
        return MaskRegion(str(region_mask).replace("{stem}", path.stem), src), msgs
    if vector:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RegionWarning)
            region = load_vector(vector, src, vector_layer)
        msgs += [str(w.message) for w in caught]
    elif bbox:
        region = bbox_region(bbox, src)
    else:
        return None, msgs
    if not region.any_in_scene(src.width, src.height):
        msgs.append(f"{path}: no {region.describe()} geometry overlaps the scene; saliency is all zero")
    return region, msgs


def _environment(device: Optional[str] = None) -> dict[str, Any]:
    import rasterio

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
        import segmentation_models_pytorch as smp

        env["segmentation_models_pytorch"] = smp.__version__
    except Exception:  # pragma: no cover
        pass
    if device and device.startswith("cuda") and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _csv_row(stem: str, path: Path, result: SceneResult, opts: ExplainOptions, width: int, height: int) -> dict:
    s = result.stats
    row = {
        "scene": stem,
        "input": str(path),
        "width": width,
        "height": height,
        "tiles": s.tiles,
        "tiles_computed": s.tiles_computed,
        "tiles_nodata": s.tiles_nodata,
        "tiles_outside_region": s.tiles_outside_region,
        "tiles_empty_region": s.tiles_empty_region,
        "seconds": round(result.seconds, 3),
        "megapixels_per_s": round(width * height / 1e6 / max(result.seconds, 1e-9), 4),
        "valid_fraction": _round(s.valid_pixels / (width * height)),
        "coverage": _round(s.class_pixels / s.valid_pixels) if s.valid_pixels else None,
        "class": opts.class_name,
        "methods": ",".join(opts.methods),
        "layer": ",".join(opts.layers),
        "normalize": opts.normalize,
        "region": opts.region,
    }
    for m in opts.methods:
        row[f"mean_{m}"] = _round(result.mean_saliency.get(m))
    row["saliency"] = result.outputs.saliency.name
    row["prediction"] = result.outputs.prediction.name
    return row


def _write_record(paths: OutputPaths, path: Path, result: SceneResult, opts: ExplainOptions, info: ModelInfo,
                  crs, width: int, height: int) -> None:
    s = result.stats
    rec = {
        "format": RECORD_FORMAT,
        "format_version": 1,
        "scene": path.stem,
        "input": str(path.resolve()),
        "size": [width, height],
        "crs": crs.to_string() if crs is not None else None,
        "outputs": {k: Path(v).name for k, v in asdict(paths).items()},
        "options": asdict(opts),
        "options_key": opts.key(info),
        "model": {"path": info.path, "sha256": info.sha256, "arch": info.arch, "encoder": info.encoder,
                  "classes": info.class_names, "tile_size": info.tile_size},
        "stats": {
            "tiles": s.tiles, "tiles_computed": s.tiles_computed, "tiles_nodata": s.tiles_nodata,
            "tiles_outside_region": s.tiles_outside_region, "tiles_empty_region": s.tiles_empty_region,
            "valid_pixels": s.valid_pixels, "class_pixels": s.class_pixels,
            "scene_min": {k: _round(v) for k, v in s.minimum.items()},
            "scene_max": {k: _round(v) for k, v in s.maximum.items()},
            "mean_saliency": {k: _round(v) for k, v in result.mean_saliency.items()},
        },
        "timings": {"seconds": round(result.seconds, 3), "pipeline_seconds": round(s.seconds, 3),
                    "compute_seconds": round(s.compute_seconds, 3),
                    "read_wait_seconds": round(s.read_wait_seconds, 3),
                    "write_wait_seconds": round(s.write_wait_seconds, 3)},
        "warnings": result.warnings,
        "environment": _environment(opts.device),
        "completed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "csv_row": _csv_row(path.stem, path, result, opts, width, height),
    }
    atomic_write_text(paths.record, json.dumps(rec, indent=2, default=str) + "\n")


def _round(v: Optional[float], nd: int = 6) -> Optional[float]:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return round(float(v), nd)


# ----------------------------------------------------------------------------- run summary
def write_run_summary(outdir: Path, results: Sequence[SceneResult], opts: Optional[ExplainOptions],
                      info: Optional[ModelInfo], started: float, shard: Optional[tuple[int, int]],
                      inputs: Sequence[str]) -> tuple[Path, Path]:
    """Regenerate ``segxai_scenes.csv`` and ``segxai_manifest.json`` from every scene record in
    ``outdir`` (atomically): rows of other shards/runs are kept, this run's details are added."""
    records = []
    for p in sorted(outdir.glob("*_saliency.json")):
        rec = read_record(p)
        if rec is not None:
            records.append(rec)
    rows = [r["csv_row"] for r in records if isinstance(r.get("csv_row"), dict)]
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
    csv_path = atomic_write_text(outdir / CSV_NAME, buf.getvalue())
    manifest = {
        "format": "segxai-manifest",
        "format_version": 1,
        "segxai_version": __version__,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "last_run": {
            "inputs": list(inputs),
            "shard": f"{shard[0]}/{shard[1]}" if shard else None,
            "options": asdict(opts) if opts else None,
            "model": ({"path": info.path, "sha256": info.sha256, "arch": info.arch, "encoder": info.encoder}
                      if info else None),
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 3),
            "results": [r.to_dict() for r in results],
            "environment": _environment(opts.device if opts else None),
        },
        "scenes": [
            {k: rec.get(k) for k in ("scene", "input", "size", "crs", "outputs", "options", "options_key", "model",
                                     "stats", "timings", "completed")}
            for rec in records
        ],
    }
    man_path = atomic_write_text(outdir / MANIFEST_NAME, json.dumps(manifest, indent=2, default=str) + "\n")
    return man_path, csv_path


# ----------------------------------------------------------------------------- many scenes
def explain_scenes(
    inputs: Union[str, Path, Iterable[Union[str, Path]]],
    outdir: Union[str, Path],
    model: ModelArg = None,
    *,
    shard: Union[str, tuple, None] = None,
    device: Union[str, torch.device] = "auto",
    progress: bool = False,
    region_mask: Union[str, Path, None] = None,
    vector: Union[str, Path, None] = None,
    vector_layer: Optional[str] = None,
    bbox: Optional[Sequence[float]] = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    **kwargs: Any,
) -> RunResult:
    """Explain many scenes (files, folders, globs) with one model load.

    An input that fails (user error or not) is logged and recorded as failed; the others are still
    processed (check :attr:`RunResult.ok`). ``shard=(K, N)`` or ``"K/N"`` keeps every N-th input of
    the sorted list starting at the K-th (1-based), for Slurm job arrays or several machines.
    Other keyword arguments as for :func:`explain_scene`.
    """
    t0 = time.time()
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    inputs = [str(i) for i in inputs]
    shard_t = parse_shard(shard)
    dev = resolve_device(device)
    net, info = resolve_model(model, dev)
    opts = _resolve_options(
        info, dev, kwargs.pop("methods", None), kwargs.pop("layer", None), kwargs.pop("target_class", None),
        kwargs.pop("bands", None), kwargs.pop("tile_size", None), kwargs.pop("overlap", 0.25),
        kwargs.pop("normalize", "scene"), kwargs.pop("use_probs", False), kwargs.pop("batch_size", None),
        kwargs.pop("autocast", None), region_mask, vector, vector_layer, bbox, kwargs.pop("compress", "deflate"),
    )
    if kwargs:
        raise TypeError(f"unexpected arguments: {', '.join(kwargs)}")
    _check_layers(net, opts.layers)
    outdir = prepare_outdir(outdir)
    paths, results = expand_inputs(inputs)
    if not paths and not results:
        raise SegxaiError("no inputs given")
    # Two inputs with the same stem would write the same outputs: the first (sorted) wins, everywhere.
    seen: dict[str, Path] = {}
    todo: list[Path] = []
    for p in paths:
        if p.stem in seen:
            results.append(SceneResult(p, "failed", error=f"{p}: same file name as {seen[p.stem]} (outputs would collide)"))
        else:
            seen[p.stem] = p
            todo.append(p)
    if shard_t:
        k, n = shard_t
        todo = [p for i, p in enumerate(todo) if i % n == k - 1]
        results = [r for i, r in enumerate(results) if i % n == k - 1]
    for r in results:
        log.error("%s", r.error)
    for p in todo:
        try:
            res = _explain_one(p, outdir, net, info, opts, dev, region_mask=region_mask, vector=vector,
                               vector_layer=vector_layer, bbox=bbox, overwrite=overwrite,
                               skip_existing=skip_existing, progress=progress)
        except SegxaiError as exc:
            msg = str(exc)
            if str(p) not in msg and p.name not in msg:
                msg = f"{p}: {msg}"
            log.error("%s", msg)
            res = SceneResult(p, "failed", error=msg)
        except Exception as exc:  # a bug or an unexpected library error: report, keep going
            log.error("%s: failed: %s: %s", p, type(exc).__name__, exc)
            log.debug("traceback", exc_info=True)
            res = SceneResult(p, "failed", error=f"{p}: {type(exc).__name__}: {exc}")
        results.append(res)
    run = RunResult(results, outdir, seconds=time.time() - t0)
    try:
        run.manifest, run.csv = write_run_summary(outdir, results, opts, info, t0, shard_t, inputs)
    except SegxaiError as exc:
        log.error("%s", exc)
        run.scenes.append(SceneResult(outdir, "failed", error=str(exc)))
    run.seconds = time.time() - t0
    return run

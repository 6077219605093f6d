"""The faithfulness study (seed 001) as a library: per tile × method × layer × threshold × mode rows.

Efficiency: per batch of tiles the model runs once on the full tiles and once on the all-fill tiles
(shared by every method and layer); the CAM engine computes every method of a layer from one pass;
then *all* reduced inputs of the batch -- every method × threshold × mode, the soft ``x ⊙ S`` input
of PPS and every deletion/insertion step -- are generated lazily and run through the model together
in chunks of ``chunk`` images under ``no_grad`` on the device. Only per-image scalars leave each chunk.

Forward passes per tile and layer, for M methods, n thresholds and s curve steps:
``M × (3 n + 1 + 2 (s - 1))`` (+ Score-CAM's K per method), plus 2 per tile shared by all layers.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from segxai_cli.cam import METHODS, EmptyRegionWarning, explain_batch
from segxai_cli.errors import InputError, SegxaiError
from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.reduce import (
    DEFAULT_BLUR_SIGMA,
    FILLS,
    MODES,
    apply_keep,
    check_modes,
    check_threshold,
    fill_values,
    keep_mask,
)
from segxai_cli.model.checkpoint import require_band_stats
from segxai_cli.raster.inputs import match_masks
from segxai_cli.raster.reader import BandStats

DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xgradcam", "scorecam", "eigencam")
DEFAULT_LAYERS: tuple[str, ...] = ("decoder.last",)
DEFAULT_THRESHOLD = 0.5
SWEEP_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_CURVE_STEPS = 10
MASK_IGNORE_VALUE = 255

# The tidy CSV's columns, in order (documented in docs/study.md).
COLUMNS: tuple[str, ...] = (
    "scene", "tile", "row_off", "col_off", "method", "layer", "threshold", "mode",
    "target_source", "target_class", "empty_target", "empty_prediction", "n_valid", "n_target",
    "kept_fraction",
    "confidence_full", "confidence", "confidence_drop",
    "entropy_full", "entropy", "entropy_increase",
    "iou_full", "iou", "iou_change", "iou_pred",
    "dice_explained", "saliency_ratio", "pps", "ips",
    "deletion_auc", "insertion_auc", "sanity_spearman",
)
METRIC_COLUMNS: tuple[str, ...] = COLUMNS[COLUMNS.index("kept_fraction"):]


@dataclass
class StudyConfig:
    """Options of one study run (everything that changes the numbers is recorded in the report)."""

    methods: Sequence[str] = DEFAULT_METHODS
    layers: Sequence[str] = DEFAULT_LAYERS
    thresholds: Sequence[float] = (DEFAULT_THRESHOLD,)
    modes: Sequence[str] = MODES
    target_class: int | None = None
    fill: str = "mean"
    blur_sigma: float = DEFAULT_BLUR_SIGMA
    curve_steps: int = DEFAULT_CURVE_STEPS
    sanity: bool = False
    seed: int = 0
    batch_size: int = 4
    chunk: int = 16
    use_probs: bool = False
    score_chunk: int = 64

    def validate(self, n_out: int) -> "StudyConfig":
        methods = []
        for m in self.methods:
            methods.extend(METHODS if m == "all" else [m])
        bad = [m for m in methods if m not in METHODS]
        if bad or not methods:
            raise SegxaiError(f"unknown CAM method(s) {', '.join(map(repr, bad)) or '(none)'}; valid: {', '.join(METHODS)}, all")
        self.methods = list(dict.fromkeys(methods))
        self.layers = list(dict.fromkeys(str(layer) for layer in self.layers))
        if not self.layers:
            raise SegxaiError("no target layer given")
        self.thresholds = sorted({round(check_threshold(t), 6) for t in self.thresholds})
        if not self.thresholds:
            raise SegxaiError("no threshold given")
        self.modes = check_modes(self.modes)
        if self.fill not in FILLS:
            raise SegxaiError(f"unknown fill {self.fill!r}; valid: {', '.join(FILLS)}")
        if self.curve_steps < 0 or self.curve_steps == 1:
            raise SegxaiError("curve steps must be 0 (no deletion/insertion curves) or >= 2")
        if self.batch_size < 1 or self.chunk < 1:
            raise SegxaiError("batch size and chunk must be >= 1")
        valid = (0, 1) if n_out == 1 else tuple(range(n_out))
        if self.target_class is not None and self.target_class not in valid:
            raise SegxaiError(f"class {self.target_class} is not valid for this model (valid: {', '.join(map(str, valid))})")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods), "layers": list(self.layers), "thresholds": list(self.thresholds),
            "modes": list(self.modes), "target_class": self.target_class, "fill": self.fill,
            "blur_sigma": self.blur_sigma if self.fill == "blur" else None, "curve_steps": self.curve_steps,
            "sanity": self.sanity, "seed": self.seed, "batch_size": self.batch_size, "chunk": self.chunk,
            "use_probs": self.use_probs,
        }


@dataclass
class StudyResult:
    """Rows plus what a report must say about them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (scene, message)
    scenes: list[dict[str, Any]] = field(default_factory=list)  # per scene: tiles, skipped, target source
    forwards: int = 0  # model forward images (excluding CAM computation)
    deduplicated: int = 0  # reduced inputs identical to another one (or to the full / all-fill tile), not re-run
    seconds: float = 0.0


# ----------------------------------------------------------------------------- models
def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """Same architecture, weights re-initialised (``reset_parameters`` of every module), seeded.

    Initialisation runs on the CPU with a forked RNG, so the result is the same on every device
    and the caller's random state is untouched.
    """
    device = next(model.parameters()).device
    clone = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for mod in clone.modules():
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone.to(device).eval()


def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = out["out"]
    return out.float()


# ----------------------------------------------------------------------------- one batch
@dataclass
class TileTensors:
    """A batch of tiles ready for evaluation (all on the model's device).

    ``images`` (B, C, H, W) normalised; ``region`` (B, H, W) bool: pixels that count (valid data,
    inside the window, not ignored in the mask); ``target`` (B, H, W) bool ground truth or None
    (then the original prediction is the target).
    """

    images: torch.Tensor
    region: torch.Tensor
    target: torch.Tensor | None = None
    valid: torch.Tensor | None = None  # nodata pixels are never filled (default: region)


def evaluate_batch(
    model: nn.Module,
    tiles: TileTensors,
    cfg: StudyConfig,
    target_class: int,
    stats: BandStats | None = None,
    random_model: nn.Module | None = None,
    counter: list[int] | None = None,
    maps: dict[str, dict[str, torch.Tensor]] | None = None,
) -> list[list[dict[str, Any]]]:
    """Evaluate one batch; returns, per tile, its rows (without scene/tile identification).

    ``maps`` (optional): precomputed saliency maps ``{layer: {method: (B, H, W) in [0, 1]}}`` to
    evaluate instead of computing them with the CAM engine (maps from another tool, or tests).
    """
    given_maps = maps
    x, region = tiles.images, tiles.region
    valid = tiles.valid if tiles.valid is not None else region
    B = x.shape[0]
    dev = x.device
    modes = list(cfg.modes)
    thresholds = list(cfg.thresholds)
    steps = cfg.curve_steps
    fracs = M.curve_fractions(steps).tolist() if steps else []
    fv = fill_values(x, cfg.fill, stats, cfg.blur_sigma)
    n_fwd = 0
    n_dedup = [0]

    def run(batch: torch.Tensor) -> torch.Tensor:
        nonlocal n_fwd
        outs = []
        with torch.no_grad():
            for s in range(0, batch.shape[0], cfg.chunk):
                # channels_last input: ~1.5x faster convolutions on CPU (oneDNN), same results to ~1e-6
                part = batch[s:s + cfg.chunk].contiguous(memory_format=torch.channels_last)
                outs.append(_forward(model, part))
        n_fwd += batch.shape[0]
        return torch.cat(outs)

    # Full and all-fill inputs: shared by every layer and method.
    base = run(torch.cat([x, apply_keep(x, fv, torch.zeros_like(region), valid)]))
    logits_full, logits_fill = base[:B], base[B:]
    pred_full = M.predicted_class(logits_full, target_class) & region
    p_full = M.class_prob(logits_full, target_class)
    if tiles.target is None:
        target, source = pred_full, "prediction"
    else:
        target, source = tiles.target & region, "ground_truth"
    conf_full = M.confidence(logits_full, target, target_class)
    ent_full = M.mean_entropy(logits_full, target)
    iou_full = M.iou(pred_full, target, region)
    conf_fill = M.confidence(logits_fill, target, target_class)
    n_target = target.flatten(1).sum(1)
    n_valid = region.flatten(1).sum(1)
    empty_pred = ~pred_full.flatten(1).any(1)

    per_tile: list[list[dict[str, Any]]] = [[] for _ in range(B)]
    for layer in cfg.layers:
        layer_arg = layer.split("+") if "+" in layer else layer
        if given_maps is not None:
            maps = {m: given_maps[layer][m].to(dev).float() for m in cfg.methods}
        else:
            maps = _maps(model, x, layer_arg, cfg, target_class, pred_full)
        rand_maps = _maps(random_model, x, layer_arg, cfg, target_class, pred_full) if random_model is not None else None

        # Jobs: (method index, kind, a, b) per tile; kinds: "mode" (threshold idx, mode), "pps",
        # "del"/"ins" (step idx). Each job is one reduced image per tile.
        jobs: list[tuple[int, str, Any, Any]] = []
        for mi in range(len(cfg.methods)):
            for ti in range(len(thresholds)):
                for mode in modes:
                    jobs.append((mi, "mode", ti, mode))
            jobs.append((mi, "pps", None, None))
            for si in range(1, len(fracs) - 1):
                jobs.append((mi, "del", si, None))
                jobs.append((mi, "ins", si, None))
        ranks = {}
        if fracs:
            for mi, m in enumerate(cfg.methods):
                ranks[mi] = M.saliency_rank(maps[m], region)

        # Every (job, tile) pair, flattened job-major. Identical reduced inputs (e.g. M3 == M2 when
        # T ⊆ Phi, or M2 == the full tile when Phi covers it) run once: a fingerprint finds them.
        n_items = len(jobs) * B
        item_b = torch.arange(n_items, device=dev) % B
        weights = []
        for i in range(n_items):
            mi, kind, a, b = jobs[i // B]
            t = i % B
            S = maps[cfg.methods[mi]][t:t + 1]
            if kind == "mode":
                w = keep_mask(b, S >= thresholds[a], target[t:t + 1])
            elif kind == "pps":
                w = S
            else:
                rank, n = ranks[mi]
                w = M.curve_keep(rank[t:t + 1], n[t:t + 1], fracs[a], "deletion" if kind == "del" else "insertion")
            weights.append(w.to(torch.float32))
        W = torch.cat(weights)
        W = torch.where(valid[item_b], W, torch.ones_like(W))  # nodata is always kept (as apply_keep does)
        res = {"kept": M.masked_mean(W, region[item_b])}
        res.update({k: torch.full((n_items,), math.nan, dtype=torch.float32, device=dev)
                    for k in ("conf", "ent", "iou", "iou_pred", "dice_pred", "pps")})

        # Fingerprints: the full tile and the all-fill tile were already run (base logits).
        probe = torch.rand(W[0].numel(), generator=torch.Generator().manual_seed(12345), dtype=torch.float64).to(dev)
        fp = _fingerprint(W, probe)
        base_w = torch.cat([torch.ones_like(region), ~valid]).float()  # full, fill (nodata kept)
        base_fp = _fingerprint(base_w, probe)
        seen: dict[tuple[int, float], tuple[str, int]] = {}
        for j in range(2 * B):
            seen[(j % B, base_fp[j])] = ("base", j)
        to_run, copies = [], []  # copies: (item, ("base"|"run", index))
        ib = item_b.tolist()
        for i in range(n_items):
            key = (ib[i], fp[i])
            hit = seen.get(key)
            if hit is not None:
                ref = base_w[hit[1]] if hit[0] == "base" else W[hit[1]]
                if torch.equal(ref, W[i]):
                    copies.append((i, hit))
                    continue
            seen.setdefault(key, ("run", i))
            to_run.append(i)

        def score(logits, bs, rows):
            reg, tgt = region[bs], target[bs]
            pred = M.predicted_class(logits, target_class) & reg
            res["conf"][rows] = M.confidence(logits, tgt, target_class)
            res["ent"][rows] = M.mean_entropy(logits, tgt)
            res["iou"][rows] = M.iou(pred, tgt, reg)
            res["iou_pred"][rows] = M.iou(pred, pred_full[bs], reg)
            res["dice_pred"][rows] = M.dice(pred_full[bs], pred, reg)
            res["pps"][rows] = M.pps(p_full[bs], M.class_prob(logits, target_class), reg)

        for s in range(0, len(to_run), cfg.chunk):
            rows = torch.tensor(to_run[s:s + cfg.chunk], device=dev)
            bs = item_b[rows]
            score(run(apply_keep(x[bs], fv[bs], W[rows], valid[bs])), bs, rows)
        if copies:
            base_items = [(i, h[1]) for i, h in copies if h[0] == "base"]
            if base_items:
                rows = torch.tensor([i for i, _ in base_items], device=dev)
                score(base[torch.tensor([j for _, j in base_items], device=dev)], item_b[rows], rows)
            run_items = [(i, h[1]) for i, h in copies if h[0] == "run"]
            if run_items:
                dst = torch.tensor([i for i, _ in run_items], device=dev)
                src_ = torch.tensor([j for _, j in run_items], device=dev)
                for k in ("conf", "ent", "iou", "iou_pred", "dice_pred", "pps"):
                    res[k][dst] = res[k][src_]
        n_dedup[0] += len(copies)
        res_np = {k: v.view(len(jobs), B).cpu().numpy().astype(np.float64) for k, v in res.items()}
        job_index = {j: n for n, j in enumerate(jobs)}

        # Per-method, per-tile quantities that do not need reduced inputs.
        scal: dict[str, dict[str, np.ndarray]] = {}
        for mi, m in enumerate(cfg.methods):
            S = maps[m]
            d: dict[str, np.ndarray] = {"ips": _np(M.ips(S, region))}
            for ti, t in enumerate(thresholds):
                d[f"sr{ti}"] = _np(M.saliency_ratio(S >= t, pred_full, region))
            if fracs:
                dl = [_np(conf_full)] + [res_np["conf"][job_index[(mi, "del", si, None)]] for si in range(1, len(fracs) - 1)] + [_np(conf_fill)]
                il = [_np(conf_fill)] + [res_np["conf"][job_index[(mi, "ins", si, None)]] for si in range(1, len(fracs) - 1)] + [_np(conf_full)]
                d["del"] = np.trapezoid(np.stack(dl, 1), fracs, axis=1)
                d["ins"] = np.trapezoid(np.stack(il, 1), fracs, axis=1)
            if rand_maps is not None:
                d["sanity"] = _np(M.spearman(S, rand_maps[m], region))
            scal[m] = d

        cf, ef, jf = _np(conf_full), _np(ent_full), _np(iou_full)
        for mi, m in enumerate(cfg.methods):
            d = scal[m]
            pps_v = res_np["pps"][job_index[(mi, "pps", None, None)]]
            for ti, t in enumerate(thresholds):
                de = (res_np["dice_pred"][job_index[(mi, "mode", ti, "M2")]] if "M2" in modes else np.full(B, np.nan))
                for mode in modes:
                    j = job_index[(mi, "mode", ti, mode)]
                    for b in range(B):
                        conf, ent, io = res_np["conf"][j, b], res_np["ent"][j, b], res_np["iou"][j, b]
                        per_tile[b].append({
                            "method": m, "layer": layer, "threshold": t, "mode": mode,
                            "target_source": source, "target_class": target_class,
                            "empty_target": bool(n_target[b] == 0), "empty_prediction": bool(empty_pred[b]),
                            "n_valid": int(n_valid[b]), "n_target": int(n_target[b]),
                            "kept_fraction": res_np["kept"][j, b],
                            "confidence_full": cf[b], "confidence": conf, "confidence_drop": _rel(cf[b], conf),
                            "entropy_full": ef[b], "entropy": ent, "entropy_increase": -_rel(ef[b], ent),
                            "iou_full": jf[b], "iou": io, "iou_change": io - jf[b],
                            "iou_pred": res_np["iou_pred"][j, b],
                            "dice_explained": de[b], "saliency_ratio": d[f"sr{ti}"][b],
                            "pps": pps_v[b], "ips": d["ips"][b],
                            "deletion_auc": d["del"][b] if "del" in d else math.nan,
                            "insertion_auc": d["ins"][b] if "ins" in d else math.nan,
                            "sanity_spearman": d["sanity"][b] if "sanity" in d else math.nan,
                        })
    if counter is not None:
        counter[0] += n_fwd
        if len(counter) > 1:
            counter[1] += n_dedup[0]
    return per_tile


def _maps(model, x, layer, cfg: StudyConfig, target_class: int, region: torch.Tensor) -> dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmptyRegionWarning)
        return explain_batch(model, x, layer=layer, methods=list(cfg.methods), target_class=target_class,
                             region=region, normalize=True, use_probs=cfg.use_probs, score_chunk=cfg.score_chunk)


def _fingerprint(w: torch.Tensor, probe: torch.Tensor, rows: int = 64) -> list[float]:
    """One float per image: sum(w * probe). Elementwise + row sums (not a matmul, whose blocking can
    differ between rows), so identical images give identical fingerprints; matches are verified."""
    flat = w.flatten(1)
    out: list[float] = []
    for s in range(0, flat.shape[0], rows):
        out.extend((flat[s:s + rows].double() * probe).sum(1).tolist())
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().astype(np.float64)


def _rel(full: float, reduced: float) -> float:
    """(full - reduced) / full; NaN when full is 0 or NaN."""
    if not np.isfinite(full) or full == 0:
        return math.nan
    return float((full - reduced) / full)


# ----------------------------------------------------------------------------- scenes
def resolve_class(spec: str | int | None, class_names: Sequence[str], n_out: int, default: int) -> int:
    """``--class``: an index or a class name; default the checkpoint's target class."""
    if spec is None or spec == "":
        return int(default)
    valid = (0, 1) if n_out == 1 else tuple(range(n_out))
    s = str(spec).strip()
    if s.lstrip("-").isdigit():
        c = int(s)
    else:
        names = [n.lower() for n in class_names]
        if s.lower() not in names:
            raise SegxaiError(f"--class {spec!r}: unknown class name; classes: {', '.join(class_names)}")
        c = names.index(s.lower())
    if c not in valid:
        raise SegxaiError(f"--class {spec!r}: not a class of this model (valid: {', '.join(map(str, valid))})")
    return c


def check_mask_grid(src, msk) -> None:
    """The mask must share the scene's pixel grid: size, transform and CRS."""
    problems = []
    if (msk.width, msk.height) != (src.width, src.height):
        problems.append(f"size {msk.width}x{msk.height} != {src.width}x{src.height}")
    if not msk.transform.almost_equals(src.transform):
        problems.append("transform differs")
    if (msk.crs or None) != (src.crs or None):
        problems.append(f"CRS {msk.crs} != {src.crs}")
    if problems:
        raise InputError(f"{msk.name}: mask grid does not match scene {Path(src.name).name} ({'; '.join(problems)})")


def _read_target(msk, windows, tile: int, target_class: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask windows -> (target, ignore) (B, tile, tile) bool; nodata / 255 are ignored; padded = ignored."""
    tg, ig = [], []
    for win in windows:
        data = msk.read(1, window=win)
        valid = msk.read_masks(1, window=win) > 0
        h, w = data.shape
        t = np.zeros((tile, tile), bool)
        i = np.ones((tile, tile), bool)
        t[:h, :w] = data == target_class
        i[:h, :w] = (~valid) | (data == MASK_IGNORE_VALUE)
        t &= ~i
        tg.append(t)
        ig.append(i)
    return torch.from_numpy(np.stack(tg)).to(device), torch.from_numpy(np.stack(ig)).to(device)


def load_model_any(model: Any, device: torch.device):
    """None (bundled), a path, or a ``(module, ModelInfo)`` pair -> (module, info) on ``device``."""
    from segxai_cli.model.checkpoint import load_checkpoint

    if isinstance(model, tuple):
        mod, info = model
        return mod.to(device).eval(), info
    return load_checkpoint(model, device=device)


def run_study(
    inputs: Sequence[str | Path],
    masks: str | Path | Sequence[str | Path] | None = None,
    model: Any = None,
    *,
    config: StudyConfig | None = None,
    bidx: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    max_tiles: int | None = None,
    keep_going: bool = False,
    progress: Callable[[int], None] | None = None,
    on_scene: Callable[[Path, int], None] | None = None,
) -> StudyResult:
    """Run the study over scenes; see :func:`evaluate_scenes`. ``keep_going`` collects per-scene errors."""
    from segxai_cli.device import resolve_device
    from segxai_cli.raster.reader import check_bands, open_raster, open_raster_quiet
    from segxai_cli.tiling.grid import TileGrid
    from segxai_cli.tiling.tiles import read_tiles

    t0 = time.perf_counter()
    cfg = config or StudyConfig()
    dev = resolve_device(device)
    net, info = load_model_any(model, dev)
    n_out = int(info.classes)
    tclass = resolve_class(cfg.target_class, info.class_names or [], n_out, info.target_class)
    cfg.target_class = tclass
    cfg.validate(n_out)
    stats = require_band_stats(info)
    bands = list(bidx) if bidx else list(info.bands)
    if len(bands) != info.in_channels:
        raise SegxaiError(f"{len(bands)} band(s) selected but the model takes {info.in_channels}")
    random_net = randomized_copy(net, cfg.seed) if cfg.sanity else None
    tile = int(info.tile_size)
    inputs = [Path(p) for p in inputs]
    mask_map = match_masks(inputs, [masks] if isinstance(masks, (str, Path)) else masks) if masks is not None else {p: None for p in inputs}
    result = StudyResult()
    counter = [0, 0]
    for path in inputs:
        try:
            scene_rows, summary = _run_scene(path, mask_map[path], masks is not None, net, info, cfg, tclass, stats,
                                             bands, tile, dev, random_net, counter, max_tiles, progress, on_scene,
                                             open_raster, open_raster_quiet, check_bands, TileGrid, read_tiles)
        except SegxaiError as exc:
            if not keep_going:
                raise
            result.errors.append((str(path), str(exc)))
            continue
        result.rows.extend(scene_rows)
        result.scenes.append(summary)
    result.forwards, result.deduplicated = counter[0], counter[1]
    result.seconds = time.perf_counter() - t0
    return result


def _run_scene(path, mask_path, masks_given, net, info, cfg, tclass, stats, bands, tile, dev, random_net, counter,
               max_tiles, progress, on_scene, open_raster, open_raster_quiet, check_bands, TileGrid, read_tiles):
    if masks_given and mask_path is None:
        raise InputError(f"{path}: no mask {path.stem}_mask.tif found in --masks")
    rows: list[dict[str, Any]] = []
    with open_raster(path) as src:
        check_bands(src, bands)
        msk = open_raster_quiet(mask_path) if mask_path is not None else None
        try:
            if msk is not None:
                check_mask_grid(src, msk)
            grid = TileGrid(src.width, src.height, tile, 0)
            windows = list(grid.windows())
            ids = list(range(len(windows)))
            if max_tiles is not None:
                windows, ids = windows[:max_tiles], ids[:max_tiles]
            if on_scene is not None:
                on_scene(path, len(windows))
            skipped = 0
            for s in range(0, len(windows), cfg.batch_size):
                wins, wids = windows[s:s + cfg.batch_size], ids[s:s + cfg.batch_size]
                tb = read_tiles(src, wins, bands, stats, tile, dev)
                inside = torch.zeros_like(tb.valid)
                for b, (h, w) in enumerate(tb.sizes):
                    inside[b, :h, :w] = True
                region = tb.valid & inside
                target = None
                if msk is not None:
                    target, ignore = _read_target(msk, wins, tile, tclass, dev)
                    region = region & ~ignore
                keep = region.flatten(1).any(1)
                if not bool(keep.all()):
                    skipped += int((~keep).sum())
                    sel = keep.nonzero().flatten()
                    if sel.numel() == 0:
                        if progress:
                            progress(len(wins))
                        continue
                    tb_images, region, tb_valid = tb.images[sel], region[sel], tb.valid[sel]
                    target = target[sel] if target is not None else None
                    wins = [wins[i] for i in sel.tolist()]
                    wids = [wids[i] for i in sel.tolist()]
                else:
                    tb_images, tb_valid = tb.images, tb.valid
                tiles = TileTensors(tb_images, region, target, tb_valid)
                per_tile = evaluate_batch(net, tiles, cfg, tclass, stats, random_net, counter)
                for win, wid, trows in zip(wins, wids, per_tile):
                    for r in trows:
                        rows.append({"scene": path.stem, "tile": wid, "row_off": int(win.row_off),
                                     "col_off": int(win.col_off), **r})
                if progress:
                    progress(len(tb.windows))
        finally:
            if msk is not None:
                msk.close()
    summary = {"scene": path.stem, "path": str(path), "mask": str(mask_path) if mask_path else None,
               "target_source": "ground_truth" if mask_path else "prediction",
               "tiles": len(windows), "skipped_nodata_tiles": skipped}
    return [{k: r[k] for k in COLUMNS} for r in rows], summary


def evaluate_scenes(
    inputs: Sequence[str | Path],
    masks: str | Path | Sequence[str | Path] | None = None,
    model: Any = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    layers: Sequence[str] = DEFAULT_LAYERS,
    thresholds: Sequence[float] = (DEFAULT_THRESHOLD,),
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """The study as a library call: one row dict per tile × method × layer × threshold × mode.

    ``inputs``: GeoTIFF scenes; ``masks``: a folder / glob / files matched by ``<stem>_mask.tif``
    (None: the model's prediction is the target); ``model``: checkpoint path, ``(module, info)`` or
    None for the bundled model. Other keyword arguments: the :class:`StudyConfig` fields
    (``target_class``, ``fill``, ``curve_steps``, ``sanity``, ``seed``, ``batch_size``, ``chunk``,
    ...) and ``bidx``, ``device``, ``max_tiles``.
    """
    cfg_keys = set(StudyConfig.__dataclass_fields__)
    cfg = StudyConfig(methods=methods, layers=layers, thresholds=thresholds,
                      **{k: v for k, v in kwargs.items() if k in cfg_keys})
    rest = {k: v for k, v in kwargs.items() if k not in cfg_keys}
    return run_study(inputs, masks, model, config=cfg, **rest).rows



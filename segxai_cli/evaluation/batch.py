"""One batch of tiles through the study: per tile × method × layer × (threshold | budget) × mode rows.

Efficiency: per batch the model runs once on the full tiles and once on the all-fill tiles (shared
by every method and layer); the CAM engine computes every method of a layer from one pass; then
*all* reduced inputs of the batch — every method × threshold × mode, the soft ``x ⊙ S`` input of
PPS and every deletion/insertion step — are built and run through the model together in chunks of
``chunk`` images under ``no_grad``. Identical reduced inputs (M3 == M2 when T ⊆ Phi, a deletion step
equal to an M1 input…) are found by a fingerprint, verified, and run once. Only per-image scalars
leave each chunk.

Forward passes per tile and layer, for M methods, n thresholds, b budgets and s curve steps:
``M × (3 (n + b) + 1 + 2 (s - 1))`` (+ Score-CAM's K per method), plus 2 per tile shared by all layers.

Two rules hold for every reduced input (docs/study.md):

- **Ignored pixels** (outside ``region``: nodata, mask value 255, padding) are never changed: every
  reduced input, the curves' end points included, keeps them as they are, and no metric counts them.
- **Ties**: pixels are ranked by saliency, ties in a random order seeded by ``cfg.seed``
  (:func:`~segxai_cli.evaluation.metrics.tie_priority`); a budget and a curve step take exactly
  ``k = round(fraction × n_valid)`` pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from segxai_cli.cam import EmptyRegionWarning, explain_batch
from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.config import StudyConfig
from segxai_cli.evaluation.reduce import apply_keep, fill_values, keep_mask
from segxai_cli.model.families import as_adapter
from segxai_cli.raster.stats import BandStats

SCORES = ("conf", "ent", "iou", "iou_pred", "dice_pred", "pps")


@dataclass
class TileTensors:
    """A batch of tiles ready for evaluation (all on the model's device).

    ``images`` (B, C, H, W) normalised; ``region`` (B, H, W) bool: pixels that count (valid data,
    inside the window, not ignored in the mask) -- the only pixels a reduced input changes;
    ``target`` (B, H, W) bool ground truth or None (then the original prediction is the target).
    ``valid``: pixels holding data (optional; pixels outside ``region & valid`` are never changed,
    so passing it or not gives the same rows). ``explain``: the pixels whose class score the CAMs
    explain (default: the predicted class mask; a vector object in the per-object study).
    """

    images: torch.Tensor
    region: torch.Tensor
    target: torch.Tensor | None = None
    valid: torch.Tensor | None = None
    explain: torch.Tensor | None = None


@dataclass(frozen=True)
class Job:
    """One reduced image per tile: a (threshold, mode) input, the PPS input, or a curve step."""

    method: int
    kind: str  # "mode" | "budget" | "pps" | "del" | "ins"
    a: Any = None  # threshold index, budget index, or curve step index
    b: Any = None  # mode


def evaluate_batch(
    model: nn.Module,
    tiles: TileTensors,
    cfg: StudyConfig,
    target_class: int,
    stats: BandStats | None = None,
    random_model: nn.Module | None = None,
    counter: list[int] | None = None,
    maps: dict[str, dict[str, torch.Tensor]] | None = None,
    maps_out: dict[str, Any] | None = None,
    curves: list[dict[str, Any]] | None = None,
) -> list[list[dict[str, Any]]]:
    """Evaluate one batch; returns, per tile, its rows (without scene/tile identification).

    ``maps`` (optional): precomputed saliency maps ``{layer: {method: (B, H, W) in [0, 1]}}`` to
    evaluate instead of computing them with the CAM engine (maps from another tool, or tests).
    ``random_model``: fills ``sanity_spearman`` (maps of a re-initialised model). ``maps_out``: a
    dict that receives the maps (``maps_out["maps"][layer][method]``) and the explained pixels
    (``maps_out["explain"]``), for the sanity check to reuse. ``curves`` (optional): receives the
    deletion/insertion curves, one dict per tile × method × layer (``tile`` = index in the batch,
    ``method``, ``layer``, ``fractions``, ``deletion``, ``insertion``).
    """
    ev = _Batch(model, tiles, cfg, target_class, stats)
    per_tile: list[list[dict[str, Any]]] = [[] for _ in range(ev.B)]
    for layer in cfg.layers:
        if maps is not None:
            layer_maps = {m: maps[layer][m].to(ev.dev).float() for m in cfg.methods}
        else:
            ev.notes = {}
            layer_maps = ev.cam_maps(model, layer, ev.notes)
        rand_maps = ev.cam_maps(random_model, layer) if random_model is not None else None
        ev.layer_rows(per_tile, layer, layer_maps, rand_maps, curves)
        if maps_out is not None:
            maps_out.setdefault("maps", {})[layer] = layer_maps
    if maps_out is not None:
        maps_out["explain"] = ev.explain
    if counter is not None:
        counter[0] += ev.n_forward
        if len(counter) > 1:
            counter[1] += ev.n_dedup
    return per_tile


class _Batch:
    """State shared by the layers of one batch: inputs, fills, the full and all-fill forwards."""

    def __init__(self, model, tiles: TileTensors, cfg: StudyConfig, target_class: int, stats) -> None:
        self.adapter = as_adapter(model)
        self.cfg, self.c = cfg, target_class
        self.x, self.region = tiles.images, tiles.region
        # The one rule for ignored pixels: a reduced input changes only the pixels that count.
        self.valid = self.region if tiles.valid is None else self.region & tiles.valid
        self.B, self.dev = self.x.shape[0], self.x.device
        self.fracs = M.curve_fractions(cfg.curve_steps).tolist() if cfg.curve_steps else []
        self.fill = fill_values(self.x, cfg.fill, stats, cfg.blur_sigma)
        self.n_forward = self.n_dedup = 0
        self.notes: dict[str, torch.Tensor] = {}  # what the methods report per image (cam engine notes)
        # Full and all-fill inputs: shared by every layer and method.
        self.base = self.run(torch.cat([self.x, apply_keep(self.x, self.fill, torch.zeros_like(self.region), self.valid)]))
        full, fill = self.base[: self.B], self.base[self.B:]
        self.pred_full = M.predicted_class(full, self.c) & self.region
        self.p_full = M.class_prob(full, self.c)
        if tiles.target is None:
            self.target, self.source = self.pred_full, "prediction"
        else:
            self.target, self.source = tiles.target & self.region, "ground_truth"
        self.conf_full = M.confidence(full, self.target, self.c)
        self.ent_full = M.mean_entropy(full, self.target)
        self.iou_full = M.iou(self.pred_full, self.target, self.region)
        self.conf_fill = M.confidence(fill, self.target, self.c)
        self.n_target = self.target.flatten(1).sum(1)
        self.n_valid = self.region.flatten(1).sum(1)
        self.empty_pred = ~self.pred_full.flatten(1).any(1)
        self.explain = self.pred_full if tiles.explain is None else tiles.explain & self.region

    def run(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits of a stack of inputs, in chunks, without gradients."""
        outs = []
        with torch.no_grad():
            for s in range(0, batch.shape[0], self.cfg.chunk):
                # channels_last input: ~1.5x faster convolutions on CPU (oneDNN), same results to ~1e-6
                part = batch[s:s + self.cfg.chunk].contiguous(memory_format=torch.channels_last)
                outs.append(self.adapter(part).float())
        self.n_forward += batch.shape[0]
        return torch.cat(outs)

    def cam_maps(self, model, layer: str, notes: dict | None = None) -> dict[str, torch.Tensor]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EmptyRegionWarning)
            return explain_batch(model, self.x, layer=layer.split("+"), methods=list(self.cfg.methods),
                                 target_class=self.c, region=self.explain, normalize=True,
                                 use_probs=self.cfg.use_probs, notes=notes, **self.cfg.method_opts())

    def note(self, method: str, name: str) -> np.ndarray:
        """A method's per-tile note (mean over the layers of a ``a+b`` layer), NaN where it has none."""
        t = self.notes.get(f"{method}.{name}")
        return np.full(self.B, np.nan) if t is None else _np(t.float().mean(1))

    # ---------------------------------------------------------------- reduced inputs
    def jobs(self) -> list[Job]:
        jobs = []
        for mi in range(len(self.cfg.methods)):
            for ti in range(len(self.cfg.thresholds)):
                jobs += [Job(mi, "mode", ti, mode) for mode in self.cfg.modes]
            for bi in range(len(self.cfg.budgets)):
                jobs += [Job(mi, "budget", bi, mode) for mode in self.cfg.modes]
            jobs.append(Job(mi, "pps"))
            for si in range(1, len(self.fracs) - 1):
                jobs += [Job(mi, "del", si), Job(mi, "ins", si)]
        return jobs

    def keep_weights(self, jobs: list[Job], maps: dict[str, torch.Tensor]) -> torch.Tensor:
        """What each (job, tile) keeps of the original image, job-major: (jobs × B, H, W) in [0, 1]."""
        ranks = self._ranks = self.ranks(maps) if self.fracs or self.cfg.budgets else {}
        weights = []
        for job in jobs:
            S = maps[self.cfg.methods[job.method]]
            if job.kind == "mode":
                w = keep_mask(job.b, S >= self.cfg.thresholds[job.a], self.target)
            elif job.kind == "budget":
                w = keep_mask(job.b, M.top_k(*ranks[job.method], self.cfg.budgets[job.a]), self.target)
            elif job.kind == "pps":
                w = S
            else:
                rank, n = ranks[job.method]
                w = M.curve_keep(rank, n, self.fracs[job.a], "deletion" if job.kind == "del" else "insertion")
            weights.append(w.to(torch.float32))
        W = torch.cat(weights)
        item_b = torch.arange(W.shape[0], device=self.dev) % self.B
        return torch.where(self.valid[item_b], W, torch.ones_like(W))  # ignored pixels are always kept

    def ranks(self, maps: dict[str, torch.Tensor]) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """Per method, the saliency rank of each counted pixel (ties: the seeded rule) and their number."""
        return {mi: M.saliency_rank(maps[m], self.region, tie_seed=self.cfg.seed) for mi, m in enumerate(self.cfg.methods)}

    def score_reduced(self, W: torch.Tensor) -> dict[str, torch.Tensor]:
        """Metrics of every reduced input (n_items,), each distinct input run once."""
        n = W.shape[0]
        item_b = torch.arange(n, device=self.dev) % self.B
        res = {"kept": M.masked_mean(W, self.region[item_b])}
        res.update({k: torch.full((n,), math.nan, dtype=torch.float32, device=self.dev) for k in SCORES})
        to_run, copies = self._deduplicate(W, item_b)
        for s in range(0, len(to_run), self.cfg.chunk):
            rows = torch.tensor(to_run[s:s + self.cfg.chunk], device=self.dev)
            bs = item_b[rows]
            self._score(res, self.run(apply_keep(self.x[bs], self.fill[bs], W[rows], self.valid[bs])), bs, rows)
        base_items = [(i, j) for i, (kind, j) in copies if kind == "base"]
        if base_items:
            rows = torch.tensor([i for i, _ in base_items], device=self.dev)
            self._score(res, self.base[torch.tensor([j for _, j in base_items], device=self.dev)], item_b[rows], rows)
        run_items = [(i, j) for i, (kind, j) in copies if kind == "run"]
        if run_items:
            dst = torch.tensor([i for i, _ in run_items], device=self.dev)
            src = torch.tensor([j for _, j in run_items], device=self.dev)
            for k in SCORES:
                res[k][dst] = res[k][src]
        self.n_dedup += len(copies)
        return res

    def _deduplicate(self, W: torch.Tensor, item_b: torch.Tensor):
        """(items to run, [(item, ("base"|"run", index))] copies): the full and all-fill tiles were
        already run; other repeats are run once. Fingerprint matches are verified exactly."""
        probe = torch.rand(W[0].numel(), generator=torch.Generator().manual_seed(12345), dtype=torch.float64).to(self.dev)
        fp = _fingerprint(W, probe)
        base_w = torch.cat([torch.ones_like(self.region), ~self.valid]).float()  # full, fill (nodata kept)
        base_fp = _fingerprint(base_w, probe)
        seen: dict[tuple[int, float], tuple[str, int]] = {(j % self.B, base_fp[j]): ("base", j) for j in range(2 * self.B)}
        to_run, copies = [], []
        ib = item_b.tolist()
        for i in range(W.shape[0]):
            key = (ib[i], fp[i])
            hit = seen.get(key)
            if hit is not None:
                ref = base_w[hit[1]] if hit[0] == "base" else W[hit[1]]
                if torch.equal(ref, W[i]):
                    copies.append((i, hit))
                    continue
            seen.setdefault(key, ("run", i))
            to_run.append(i)
        return to_run, copies

    def _score(self, res, logits, bs, rows) -> None:
        reg, tgt = self.region[bs], self.target[bs]
        pred = M.predicted_class(logits, self.c) & reg
        res["conf"][rows] = M.confidence(logits, tgt, self.c)
        res["ent"][rows] = M.mean_entropy(logits, tgt)
        res["iou"][rows] = M.iou(pred, tgt, reg)
        res["iou_pred"][rows] = M.iou(pred, self.pred_full[bs], reg)
        res["dice_pred"][rows] = M.dice(self.pred_full[bs], pred, reg)
        res["pps"][rows] = M.pps(self.p_full[bs], M.class_prob(logits, self.c), reg)

    # ---------------------------------------------------------------- rows
    def layer_rows(self, per_tile, layer: str, maps, rand_maps, curves=None) -> None:
        jobs = self.jobs()
        res = self.score_reduced(self.keep_weights(jobs, maps))
        res_np = {k: v.view(len(jobs), self.B).cpu().numpy().astype(np.float64) for k, v in res.items()}
        index = {j: n for n, j in enumerate(jobs)}
        for mi, m in enumerate(self.cfg.methods):
            scal = self._tile_scalars(mi, maps[m], rand_maps[m] if rand_maps is not None else None, res_np, index)
            self._method_rows(per_tile, layer, mi, m, scal, res_np, index)
            if curves is not None and "del_curve" in scal:
                curves.extend({"tile": b, "method": m, "layer": layer, "fractions": list(self.fracs),
                               "deletion": scal["del_curve"][b].tolist(), "insertion": scal["ins_curve"][b].tolist()}
                              for b in range(self.B))

    def _tile_scalars(self, mi: int, S, S_rand, res_np, index) -> dict[str, np.ndarray]:
        """Per-tile quantities of one method that need no reduced input of their own."""
        d: dict[str, np.ndarray] = {"ips": _np(M.ips(S, self.region))}
        for ti, t in enumerate(self.cfg.thresholds):
            d[f"srt{ti}"] = _np(M.saliency_ratio(S >= t, self.pred_full, self.region))
        for bi, frac in enumerate(self.cfg.budgets):
            d[f"srb{bi}"] = _np(M.saliency_ratio(M.top_k(*self._ranks[mi], frac), self.pred_full, self.region))
        if self.fracs:
            inner = range(1, len(self.fracs) - 1)
            cf, cfill = _np(self.conf_full), _np(self.conf_fill)
            dl = [cf] + [res_np["conf"][index[Job(mi, "del", si)]] for si in inner] + [cfill]
            il = [cfill] + [res_np["conf"][index[Job(mi, "ins", si)]] for si in inner] + [cf]
            d["del_curve"], d["ins_curve"] = np.stack(dl, 1), np.stack(il, 1)
            d["del"] = np.trapezoid(d["del_curve"], self.fracs, axis=1)
            d["ins"] = np.trapezoid(d["ins_curve"], self.fracs, axis=1)
        if S_rand is not None:
            d["sanity"] = _np(M.spearman(S, S_rand, self.region))
        return d

    def _method_rows(self, per_tile, layer, mi, m, d, res_np, index) -> None:
        """Rows of one method: each threshold, then each budget, in each mode."""
        selections = [("mode", ti, t, None, f"srt{ti}") for ti, t in enumerate(self.cfg.thresholds)]
        selections += [("budget", bi, None, frac, f"srb{bi}") for bi, frac in enumerate(self.cfg.budgets)]
        common = self._common(mi, d, res_np, index)
        rule, sign_corr, eff = self.note(m, "sign_rule"), self.note(m, "gradcam_corr"), self.note(m, "effective_channels")
        sign_corr = np.where(rule == 1, self.note(m, "region_corr"), sign_corr)
        nan = np.full(self.B, np.nan)
        for kind, i, t, frac, sr in selections:
            de = res_np["dice_pred"][index[Job(mi, kind, i, "M2")]] if "M2" in self.cfg.modes else nan
            for mode in self.cfg.modes:
                j = index[Job(mi, kind, i, mode)]
                for b in range(self.B):
                    conf, ent, io = res_np["conf"][j, b], res_np["ent"][j, b], res_np["iou"][j, b]
                    c = common[b]
                    per_tile[b].append({
                        "method": m, "layer": layer, "threshold": t, "budget": frac, "mode": mode,
                        **c["id"], "kept_fraction": res_np["kept"][j, b],
                        "confidence_full": c["cf"], "confidence": conf, "confidence_drop": _rel(c["cf"], conf),
                        "entropy_full": c["ef"], "entropy": ent, "entropy_increase": -_rel(c["ef"], ent),
                        "iou_full": c["jf"], "iou": io, "iou_change": io - c["jf"],
                        "iou_pred": res_np["iou_pred"][j, b],
                        "dice_explained": de[b], "saliency_ratio": d[sr][b], **c["method"],
                        "sign_rule": rule[b], "sign_corr": sign_corr[b], "effective_channels": eff[b],
                    })

    def _common(self, mi, d, res_np, index) -> list[dict[str, Any]]:
        """Per tile, the values a method's rows share (full-input metrics, PPS/IPS, curves, sanity)."""
        cf, ef, jf = _np(self.conf_full), _np(self.ent_full), _np(self.iou_full)
        pps_v = res_np["pps"][index[Job(mi, "pps")]]
        out = []
        for b in range(self.B):
            out.append({
                "cf": cf[b], "ef": ef[b], "jf": jf[b],
                "id": {"object": None, "target_source": self.source, "target_class": self.c,
                       "empty_target": bool(self.n_target[b] == 0), "empty_prediction": bool(self.empty_pred[b]),
                       "n_valid": int(self.n_valid[b]), "n_target": int(self.n_target[b])},
                "method": {"pps": pps_v[b], "ips": d["ips"][b],
                           "deletion_auc": d["del"][b] if "del" in d else math.nan,
                           "insertion_auc": d["ins"][b] if "ins" in d else math.nan,
                           "sanity_spearman": d["sanity"][b] if "sanity" in d else math.nan},
            })
        return out


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


def randomized_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """Same architecture, weights re-initialised (``reset_parameters`` of every module), seeded.

    Initialisation runs on the CPU with a forked RNG, so the result is the same on every device
    and the caller's random state is untouched.
    """
    import copy

    device = next(model.parameters()).device
    clone = copy.deepcopy(model).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for mod in clone.modules():
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
    return clone.to(device).eval()



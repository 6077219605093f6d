"""Faithfulness metrics (methods.md, "Evaluation"): pure, batched torch functions.

Conventions shared by every function here:

- ``logits`` are (B, L, H, W); a model with one output channel (L = 1) is binary (sigmoid) and
  "class 1" is that channel, class 0 its complement.
- Masks are bool (B, H, W). ``region`` restricts where a metric is computed (valid pixels, not
  ignored, inside the tile); ``None`` means every pixel.
- Reductions return float32 (B,) tensors. A mean over an empty set, or a ratio with a zero
  denominator, is NaN ("undefined") -- callers mark such rows and summaries skip them; nothing here
  turns an undefined value into a fake number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from segxai_cli.model.outputs import class_prob, predicted_class  # noqa: F401  (metrics vocabulary: M.class_prob)

NAN = float("nan")


# ----------------------------------------------------------------------------- probabilities
def pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Normalised Shannon entropy per pixel (B, H, W), in [0, 1].

    L classes: ``-sum_l p_l log p_l / log L``. Binary sigmoid model: the Bernoulli entropy
    ``-(p log p + (1-p) log(1-p)) / log 2``. Computed from log-probabilities, so p = 0 gives 0, not NaN.
    """
    logits = logits.float()
    if logits.shape[1] == 1:
        z = logits[:, 0]
        logp, log1mp = torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
        h = -(logp.exp() * logp + log1mp.exp() * log1mp)
        return h / math.log(2.0)
    L = logits.shape[1]
    logp = torch.log_softmax(logits, 1)
    h = -(logp.exp() * logp).sum(1)
    return h / math.log(L)


# ----------------------------------------------------------------------------- reductions
def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, H, W) ``values`` over ``mask`` per image; NaN where the mask is empty."""
    m = mask.to(values.dtype)
    n = m.flatten(1).sum(1)
    s = (values * m).flatten(1).sum(1)
    return torch.where(n > 0, s / n.clamp_min(1), torch.full_like(s, NAN))


def confidence(logits: torch.Tensor, target: torch.Tensor, target_class: int) -> torch.Tensor:
    """Segmentation score: mean of p_c over the target pixels T (B,); NaN for an empty T."""
    return masked_mean(class_prob(logits, target_class), target)


def mean_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean normalised entropy over the target pixels T (B,); NaN for an empty T."""
    return masked_mean(pixel_entropy(logits), target)


def relative_drop(full: torch.Tensor, reduced: torch.Tensor) -> torch.Tensor:
    """``(full - reduced) / full``; NaN where ``full`` is 0 or NaN."""
    full, reduced = torch.as_tensor(full, dtype=torch.float32), torch.as_tensor(reduced, dtype=torch.float32)
    return torch.where(full != 0, (full - reduced) / full, torch.full_like(full, NAN))


def relative_increase(full: torch.Tensor, reduced: torch.Tensor) -> torch.Tensor:
    """``(reduced - full) / full``; NaN where ``full`` is 0 or NaN."""
    return -relative_drop(full, reduced)


def _count(mask: torch.Tensor) -> torch.Tensor:
    return mask.flatten(1).sum(1).float()


def _restrict(mask: torch.Tensor, region: torch.Tensor | None) -> torch.Tensor:
    return mask if region is None else mask & region


def iou(pred: torch.Tensor, ref: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """|pred ∩ ref| / |pred ∪ ref| per image within ``region``; NaN when both are empty."""
    pred, ref = _restrict(pred, region), _restrict(ref, region)
    inter, union = _count(pred & ref), _count(pred | ref)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, NAN))


def iou_change(iou_reduced: torch.Tensor, iou_full: torch.Tensor) -> torch.Tensor:
    """IoU_reduced - IoU_full (negative = the IoU fell: -0.306 means by 0.306)."""
    return iou_reduced - iou_full


def dice(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """2|a ∩ b| / (|a| + |b|) per image within ``region``; NaN when both are empty."""
    a, b = _restrict(a, region), _restrict(b, region)
    den = _count(a) + _count(b)
    return torch.where(den > 0, 2 * _count(a & b) / den.clamp_min(1), torch.full_like(den, NAN))


def dice_explained(pred_full: torch.Tensor, pred_kept: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Dice(pred_c(x), pred_c(x kept at Phi)) (Hasany et al. 2024, "A guided tour of post-hoc XAI techniques in image segmentation")."""
    return dice(pred_full, pred_kept, region)


def saliency_ratio(phi: torch.Tensor, pred_full: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """|Phi| / |pred_c(x)| per image within ``region``; NaN for an empty prediction."""
    n_pred = _count(_restrict(pred_full, region))
    return torch.where(
        n_pred > 0, _count(_restrict(phi, region)) / n_pred.clamp_min(1), torch.full_like(n_pred, NAN)
    )


def pps(p_full: torch.Tensor, p_explained: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Prediction-preservation score ``sum(min(P, P')) / sum(P)`` with soft P = p_c(x), P' = p_c(x ⊙ S)."""
    m = torch.ones_like(p_full, dtype=torch.bool) if region is None else region
    num = (torch.minimum(p_full, p_explained) * m).flatten(1).sum(1)
    den = (p_full * m).flatten(1).sum(1)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.full_like(den, NAN))


def ips(saliency: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Input-preservation score: the mean saliency ``mean(S)`` (the smaller, the more compact)."""
    m = torch.ones_like(saliency, dtype=torch.bool) if region is None else region
    return masked_mean(saliency.float(), m)


# ----------------------------------------------------------------------------- curves
def curve_fractions(steps: int = 10) -> torch.Tensor:
    """0, 1/steps, ..., 1 (the fractions of most-salient pixels removed / inserted)."""
    return torch.linspace(0.0, 1.0, steps + 1)


def tie_priority(numel: int, seed: int | None, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """The tie rule: a seeded random permutation of the ``numel`` pixel positions (None: raster order).

    Among pixels of equal saliency, the one earlier in this permutation ranks first. Drawn on the
    CPU from ``torch.Generator().manual_seed(seed)``, so it is the same on every device, for every
    tile and every method (methods whose maps tie on the same pixels get the same selection).
    """
    if seed is None:
        return None
    key = (numel, int(seed), str(device))
    cached = _PRIORITY.get(key)
    if cached is None:
        perm = torch.randperm(numel, generator=torch.Generator().manual_seed(int(seed)))
        cached = _PRIORITY[key] = perm.to(device)
    return cached


_PRIORITY: dict[tuple, torch.Tensor] = {}


def saliency_rank(saliency: torch.Tensor, region: torch.Tensor | None = None,
                  tie_seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank of each pixel by decreasing saliency (0 = most salient) among ``region``; (B, H, W) long.

    Pixels outside ``region`` rank after all others. Ties: ``tie_seed=None`` keeps raster order (a
    stable sort); an int breaks them by :func:`tie_priority` (the study's rule, seeded by ``--seed``).
    Either way exactly ``k`` pixels have rank < k. Also returns the number of ranked pixels (B,).
    """
    B = saliency.shape[0]
    s = saliency.float().flatten(1).clone()
    if region is not None:
        s[~region.flatten(1)] = -math.inf
    perm = tie_priority(s.shape[1], tie_seed, s.device)
    if perm is None:
        order = torch.sort(s, dim=1, descending=True, stable=True).indices
    else:  # a stable sort of the permuted pixels: ties keep the permutation's order
        order = perm[torch.sort(s[:, perm], dim=1, descending=True, stable=True).indices]
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(s.shape[1], device=s.device).expand(B, -1))
    if region is None:
        n = torch.full((B,), s.shape[1], dtype=torch.long, device=s.device)
    else:
        n = region.flatten(1).sum(1)
    return rank.view_as(saliency), n


def top_k(rank: torch.Tensor, n: torch.Tensor, fraction: float) -> torch.Tensor:
    """The ``k = round(fraction * n)`` top-ranked pixels of each image (B, H, W) bool (a fixed budget)."""
    n = torch.as_tensor(n, device=rank.device)
    k = torch.round(n.double() * fraction).long()
    if k.ndim:  # one count per image: broadcast over the pixels
        k = k.view(-1, *([1] * (rank.ndim - 1)))
    return rank < k


def curve_keep(rank: torch.Tensor, n: torch.Tensor, fraction: float, kind: str) -> torch.Tensor:
    """Pixels kept from the original image at one curve step (B, H, W) bool.

    ``deletion``: the top ``fraction`` most salient pixels are removed (replaced by the fill);
    ``insertion``: only they are kept, the rest is fill. ``k = round(fraction * n)`` (:func:`top_k`).
    """
    top = top_k(rank, n, fraction)
    if kind == "deletion":
        return ~top
    if kind == "insertion":
        return top
    raise ValueError(f"unknown curve kind {kind!r}")


def auc(values: torch.Tensor, fractions: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
    """Trapezoid area under ``values`` (..., S) over ``fractions`` in [0, 1] (default evenly spaced)."""
    values = values.float()
    if fractions is None:
        fractions = torch.linspace(0.0, 1.0, values.shape[-1], device=values.device)
    x = torch.as_tensor(fractions, dtype=torch.float32, device=values.device)
    return torch.trapezoid(values, x, dim=-1)


# ----------------------------------------------------------------------------- sanity
def rankdata(x: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties get their mean rank) of a 1-D tensor, like scipy.stats.rankdata."""
    x = x.flatten()
    sorted_x, order = torch.sort(x, stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()
    avg = ends - (counts.double() - 1) / 2  # mean of ranks start..end (1-based)
    ranks = torch.empty_like(x, dtype=torch.float64)
    ranks[order] = avg[inverse]
    return ranks


def spearman(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
    """Spearman rank correlation per image between (B, H, W) maps within ``region`` (B,).

    Ties get average ranks. NaN when either map is constant on the region (rank correlation undefined).
    """
    out = []
    for i in range(a.shape[0]):
        x, y = a[i].flatten(), b[i].flatten()
        if region is not None:
            r = region[i].flatten()
            x, y = x[r], y[r]
        if x.numel() < 2:
            out.append(NAN)
            continue
        rx, ry = rankdata(x.float()), rankdata(y.float())
        rx, ry = rx - rx.mean(), ry - ry.mean()
        den = torch.sqrt((rx * rx).sum() * (ry * ry).sum())
        out.append(float((rx * ry).sum() / den) if float(den) > 0 else NAN)
    return torch.tensor(out, dtype=torch.float32)

"""Score-CAM (Wang et al. 2020) for segmentation, batched over (image, channel) pairs.

``m_k`` = A_k bilinearly upsampled to the tile (align_corners=True), min-max normalised per
(image, channel) with eps 1e-8; ``s_k`` = the **mean** over the region of the class score of
``x ⊙ m_k``; ``w = softmax_k(s / T)`` (``score_temperature`` T = 1); ``map = sum_k w_k A_k``.

Why the mean: pytorch-grad-cam (``scorecam-pgc``) puts the region's *sum* into the softmax. Over a
region of thousands of pixels the channel scores then differ by thousands and the softmax is
one-hot — the "Score-CAM" map is the best channel's activation (exp(entropy) = 1.00 of 16 channels
on the bundled model). The mean is the scale of one pixel's logit, as in the classification setting
Score-CAM was made for, and does not depend on the region's size. Each image reports
``effective_channels`` = exp(entropy of w) in the notes.

The masked inputs of every pair are flattened and run in chunks of ``score_chunk`` (default: 32 on
a GPU, sized to the last-level cache on a CPU: :func:`segxai_cli.device.forward_chunk`) under no_grad
on the device. Channels whose activation is constant give an all-zero mask, i.e. the same
all-zero input for every such channel: that input is evaluated once and its score reused.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum
from segxai_cli.device import forward_chunk


@torch.no_grad()
def channel_scores(ctx: CamContext, i: int, mean: bool) -> torch.Tensor:
    """s (B, K): the target score of each image masked by each of its upsampled, normalised channels."""
    A, x = ctx.acts[i], ctx.images
    B, K = A.shape[:2]
    H, W = x.shape[-2:]
    chunk = forward_chunk(x, ctx.opts.get("score_chunk"))
    flat = A.flatten(2)
    const = flat.amax(2) == flat.amin(2)  # (B, K)
    scores = torch.zeros(B, K, device=A.device, dtype=torch.float32)
    if bool(const.any()):
        z0 = ctx.adapter.logits(ctx.forward(torch.zeros_like(x[:1])), (H, W))
        s0 = ctx.scores(z0.expand(B, *z0.shape[1:]), ctx.region, mean)  # zero input, each image's own region
        scores = torch.where(const, s0[:, None], scores)
    bi, ki = (~const).nonzero(as_tuple=True)
    for s in range(0, bi.numel(), chunk):
        b, k = bi[s:s + chunk], ki[s:s + chunk]
        m = F.interpolate(A[b, k][:, None], size=(H, W), mode="bilinear", align_corners=True)
        mf = m.flatten(1)
        lo, hi = mf.amin(1).view(-1, 1, 1, 1), mf.amax(1).view(-1, 1, 1, 1)
        m = (m - lo) / (hi - lo + 1e-8)
        scores[b, k] = ctx.scores(ctx.forward(x[b] * m), ctx.region[b], mean).float()
    return scores


def softmax_map(ctx: CamContext, i: int, scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``sum_k softmax_k(s / T) A_k``; notes the effective number of channels exp(H(w))."""
    w = torch.softmax(scores / temperature, 1)
    ctx.notes["effective_channels"] = torch.exp(-(w * torch.log(w.clamp_min(1e-30))).sum(1))
    return weighted_sum(w, ctx.acts[i])


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    return softmax_map(ctx, i, channel_scores(ctx, i, mean=True), float(ctx.opts.get("score_temperature", 1.0)))

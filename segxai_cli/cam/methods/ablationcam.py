"""Ablation-CAM (Desai & Ramaswamy 2020), batched over (image, channel) pairs.

``y_k`` = the score with channel k of A set to 0; ``w_k = (y - y_k) / |y|``; ``map = sum_k w_k A_k``.

Why ``|y|``: the paper (and pytorch-grad-cam, ``ablationcam-pgc``) divides by ``y``, which assumes a
positive score. A segmentation target is a sum of logits and is often negative (a background box:
y = -9 049 on the bundled model); dividing by it turns every weight around and the map
anti-correlates with Grad-CAM (-0.47). With ``|y|`` a channel whose removal lowers the score is
important whatever the score's sign. The denominator is clamped at 1e-6 (|y| ≈ 0 only scales the
map, which min-max undoes).

Only the network *after* the layer depends on the ablation: when the model's adapter knows that
suffix (smp U-Net decoder blocks), only it is re-run on the features cached by the main forward,
with the shortcuts of :mod:`segxai_cli.model.unet_suffix`. Otherwise the whole model runs with a
hook setting the channel. Pairs go in chunks of ``ablation_chunk`` (default: sized by the CPU's
last-level cache, or by memory on a GPU). A channel that already equals its ablated value (a dead
ReLU channel) is not re-run: its y_k is y.
"""

from __future__ import annotations

from typing import Optional

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum
from segxai_cli.device import forward_chunk

EPS = 1e-6


@torch.no_grad()
def ablation_scores(ctx: CamContext, i: int, values: Optional[torch.Tensor] = None) -> torch.Tensor:
    """y_k (B, K): the target score with channel k of image b set to ``values[b]`` (default 0)."""
    A = ctx.acts[i]
    K = A.shape[1]
    suffix = ctx.adapter.suffix(ctx.refs[i]) if ctx.opts.get("ablation_suffix", True) else None
    fast = bool(ctx.opts.get("ablation_linear", True))
    dot = _score_gradient(ctx, suffix, A) if suffix is not None and fast and suffix.head_linear and not ctx.use_probs else None
    v = 0 if values is None else values.to(A.dtype)[:, None, None, None]
    if dot is not None and suffix.last:  # A feeds the (affine) head: y_k = y - <G_k, A_k - v>, all at once
        return ctx.y.float()[:, None] - (dot[0] * (A - v)).sum((2, 3))
    G_last = None if dot is None else dot[0].permute(0, 2, 3, 1).contiguous()  # channels-last, as the fast path's f
    chunk = max(1, int(ctx.opts.get("ablation_chunk") or (suffix.chunk_size(A) if suffix is not None
                                                          else forward_chunk(ctx.images, None))))
    # a channel already equal to its ablated value everywhere (a dead ReLU channel: 4 % at a random
    # U-Net's decoder block 0, more in trained ones) leaves the score as it is: y_k = y, no re-run
    todo = (A != v).flatten(2).any(-1).cpu()  # (B, K): the pairs to re-run; the one host sync
    bi, ki = (t.to(A.device) for t in todo.nonzero(as_tuple=True))
    yk = ctx.y.float()[:, None].repeat(1, K)
    if suffix is None:  # whole-model re-runs, chunks across images
        for s in range(0, bi.numel(), chunk):
            b, k = bi[s:s + chunk], ki[s:s + chunk]
            yk[b, k] = ctx.scores(_ablated_forward(ctx, i, b, k, None if values is None else values[b]),
                                  ctx.region[b]).float()
        return yk
    for img, kimg in enumerate(ki.split(todo.sum(1).tolist())):  # suffix re-runs, image by image: its cached tensors broadcast
        for s in range(0, kimg.numel(), chunk):
            k = kimg[s:s + chunk]
            b = torch.full_like(k, img)
            with ctx.amp():
                f = suffix.features(ctx.cache, A, b, k, values=None if values is None else values[b], fast=fast,
                                    image=img)
                if dot is not None:
                    # <f, G> in f's channels-last order: a view, not a copy of every ablated output
                    yk[img, k] = f.float().permute(0, 2, 3, 1).reshape(f.shape[0], -1) @ G_last[img].flatten() \
                        + dot[1][img]
                else:
                    yk[img, k] = ctx.scores(suffix.head(f), ctx.region[b]).float()
    return yk


def _score_gradient(ctx: CamContext, suffix, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, c): y = <G, f> + c for the decoder output f, valid because the head and a logit target are affine."""
    with torch.enable_grad(), ctx.amp():
        f0 = suffix.decode(ctx.cache, A, torch.arange(A.shape[0], device=A.device)).detach().float().requires_grad_(True)
        y0 = ctx.scores(suffix.head(f0), ctx.region)
        if not y0.requires_grad:  # the region is empty everywhere
            return torch.zeros_like(f0), y0.detach()
        (G,) = torch.autograd.grad(y0.sum(), f0)
    return G, y0.detach() - (G * f0.detach()).sum((1, 2, 3))


def _ablated_forward(ctx: CamContext, i: int, b: torch.Tensor, k: torch.Tensor, values: Optional[torch.Tensor]):
    """The whole model on images ``b`` with channel ``k`` of layer ``i`` set to ``values`` (0) by a hook."""
    ref = ctx.refs[i]
    rows = torch.arange(b.numel(), device=b.device)

    def hook(_mod, _inp, out):
        t = ref.select(out).clone()
        t[rows, k] = 0 if values is None else values.to(t.dtype)[:, None, None]
        return ref.replace(out, t)

    h = ref.module.register_forward_hook(hook)
    try:
        return ctx.forward(ctx.images[b])
    finally:
        h.remove()


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    yk = ablation_scores(ctx, i)
    y = ctx.y.float()[:, None]
    return weighted_sum((y - yk) / y.abs().clamp_min(EPS), ctx.acts[i])

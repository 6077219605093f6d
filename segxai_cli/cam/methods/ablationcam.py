"""Ablation-CAM (Desai & Ramaswamy 2020), batched over (image, channel) pairs.

``y_k`` = the score with channel k of A set to 0; ``w_k = (y - y_k) / y``; ``map = sum_k w_k A_k``.

Only the network *after* the layer depends on the ablation: when the model's adapter knows that
suffix (smp U-Net decoder blocks), only it is re-run on the features cached by the main forward —
and the next block's first convolution is skipped by linearity (``ablation_linear``). Otherwise the
whole model runs with a hook zeroing the channel. Pairs go in chunks of ``ablation_chunk`` (32).
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum


def _pairs(B: int, K: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.arange(B, device=device).repeat_interleave(K), torch.arange(K, device=device).repeat(B)


@torch.no_grad()
def compute(ctx: CamContext, i: int) -> torch.Tensor:
    A, ref = ctx.acts[i], ctx.refs[i]
    B, K = A.shape[:2]
    chunk = int(ctx.opts.get("ablation_chunk", 32))
    suffix = ctx.adapter.suffix(ref) if ctx.opts.get("ablation_suffix", True) else None
    linear = bool(ctx.opts.get("ablation_linear", True))
    bi, ki = _pairs(B, K, A.device)
    yk = torch.empty(B * K, device=A.device, dtype=torch.float32)
    for s in range(0, B * K, chunk):
        b, k = bi[s:s + chunk], ki[s:s + chunk]
        if suffix is not None:
            with ctx.amp():
                out = suffix.ablate(ctx.cache, A, b, k, linear=linear)
        else:
            out = _ablated_forward(ctx, i, b, k)
        yk[s:s + chunk] = ctx.scores(out, ctx.region[b]).float()
    y = ctx.y.float()[:, None]
    yk = yk.view(B, K)
    safe = torch.where(y == 0, torch.ones_like(y), y)
    w = torch.where(y == 0, torch.zeros_like(yk), (y - yk) / safe)
    return weighted_sum(w, A)


def _ablated_forward(ctx: CamContext, i: int, b: torch.Tensor, k: torch.Tensor):
    """The whole model on images ``b`` with channel ``k`` of layer ``i`` zeroed by a hook."""
    ref = ctx.refs[i]
    rows = torch.arange(b.numel(), device=b.device)

    def hook(_mod, _inp, out):
        t = ref.select(out).clone()
        t[rows, k] = 0
        return ref.replace(out, t)

    h = ref.module.register_forward_hook(hook)
    try:
        return ctx.forward(ctx.images[b])
    finally:
        h.remove()

"""FullGrad (Srinivas & Fleuret 2019), as pytorch-grad-cam's FullGrad; it ignores the target layer.

``map = N(|x ⊙ dy/dx|) + sum_l N(|b_l ⊙ dy/dz_l|)`` over every ``Conv2d`` / ``BatchNorm2d`` with a
bias (batch norm's effective bias ``β - μ γ / sqrt(σ² + ε)``), ``z_l`` its output, ``N`` = per
(image, channel) min-max (eps 1e-7) then bilinear resize to the tile, summed over channels. One
forward and one backward down to the input (no weight gradients), computed once per batch whatever
the layers (every ``--layer`` gives the same map).

The resize is applied after the channel sum (bilinear interpolation is linear, so it is the same
sum) to keep one full-resolution map per layer instead of one per channel.
"""

from __future__ import annotations

import torch
from torch import nn

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.post import minmax, resize

_BIASED = (nn.Conv2d, nn.BatchNorm2d)


def _bias(layer: nn.Module) -> torch.Tensor:
    if isinstance(layer, nn.BatchNorm2d):
        return layer.bias - layer.running_mean * layer.weight / torch.sqrt(layer.running_var + layer.eps)
    return layer.bias


def _channel_minmax_sum(t: torch.Tensor) -> torch.Tensor:
    """sum_c minmax(t[:, c]) for t (B, C, h, w) -> (B, h, w)."""
    B, C = t.shape[:2]
    return minmax(t.flatten(0, 1)).view(B, C, *t.shape[2:]).sum(1)


def fullgrad(ctx: CamContext) -> torch.Tensor:
    layers = [m for m in ctx.model.modules() if type(m) in _BIASED and m.bias is not None]
    outs: list[tuple[nn.Module, torch.Tensor]] = []  # one per call of a biased layer

    def record(mod, _inp, out):
        outs.append((mod, out))
        return out.clone()  # in-place ops after the layer (ReLU(inplace)) must not touch the recorded output

    x = ctx.images.detach().float().requires_grad_(True)
    handles = [m.register_forward_hook(record) for m in layers]
    try:
        with torch.enable_grad(), ctx.amp():
            y = ctx.scores(ctx.model(x), ctx.region)
    finally:
        for h in handles:
            h.remove()
    size = tuple(x.shape[-2:])
    if not y.requires_grad:
        return torch.zeros(x.shape[0], *size, device=x.device)
    grads = torch.autograd.grad(y.sum(), [x, *(o for _, o in outs)], allow_unused=True)
    total = _channel_minmax_sum((grads[0] * x).abs().detach().float())
    for (layer, _), g in zip(outs, grads[1:]):
        if g is not None:
            total = total + resize(_channel_minmax_sum((_bias(layer).detach()[None, :, None, None] * g).abs().float()), size)
    return total


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    if "fullgrad" not in ctx.cache:
        ctx.cache["fullgrad"] = fullgrad(ctx)
    return ctx.cache["fullgrad"]

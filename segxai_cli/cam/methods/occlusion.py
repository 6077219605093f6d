"""Occlusion (Zeiler & Fergus 2014): the score drop when a square patch is set to the baseline.

A ``occlusion_window`` × ``occlusion_window`` patch (all bands) slides with ``occlusion_stride``;
each pixel gets the mean drop ``y - y_occluded`` over the patches covering it — Captum's
``Occlusion`` with the same window, strides and a scalar baseline (normalised space: 0 = band
mean), the target being the region's score. Unlike Captum, a last patch is added flush with the
bottom/right edge when the stride does not reach it, so every pixel is covered. Patches go through
the model ``perturb_chunk`` images at a time; the positive part is the map (as for the CAMs).
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.device import forward_chunk


def positions(length: int, window: int, stride: int) -> list[int]:
    """Patch starts along one axis: every ``stride`` pixels, plus one flush with the end."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


@torch.no_grad()
def occlusion_map(ctx: CamContext) -> torch.Tensor:
    """The signed attribution (B, H, W): mean score drop over the patches covering each pixel."""
    x, o = ctx.images, ctx.opts
    B, _, H, W = x.shape
    wh, ww = min(int(o.get("occlusion_window", 32)), H), min(int(o.get("occlusion_window", 32)), W)
    stride = int(o.get("occlusion_stride", 16))
    baseline = torch.tensor(float(o.get("baseline", 0.0)), dtype=x.dtype, device=x.device)
    dev = x.device
    ys = torch.tensor(positions(H, wh, stride), device=dev)
    xs = torch.tensor(positions(W, ww, stride), device=dev)
    py, px = ys.repeat_interleave(len(xs)), xs.repeat(len(ys))
    r, c = torch.arange(H, device=dev), torch.arange(W, device=dev)
    per = max(1, forward_chunk(x, o.get("perturb_chunk")) // B)
    attr = torch.zeros(B, H, W, device=dev)
    count = torch.zeros(H, W, device=dev)
    y0 = ctx.y.float()
    for s in range(0, py.numel(), per):
        y_, x_ = py[s:s + per], px[s:s + per]
        n = y_.numel()
        inside = (((r[None] >= y_[:, None]) & (r[None] < y_[:, None] + wh))[:, :, None]
                  & ((c[None] >= x_[:, None]) & (c[None] < x_[:, None] + ww))[:, None, :])  # (n, H, W)
        inp = torch.where(inside[None, :, None], baseline, x[:, None]).flatten(0, 1)
        drop = y0[:, None] - ctx.scores(ctx.forward(inp), ctx.region.repeat_interleave(n, 0)).float().view(B, n)
        maskf = inside.float()
        attr += torch.einsum("bn,nhw->bhw", drop, maskf)
        count += maskf.sum(0)
    return attr / count.clamp_min(1)


def compute(ctx: CamContext) -> torch.Tensor:
    return torch.relu(occlusion_map(ctx))

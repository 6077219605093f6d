"""Gradient CAMs: each is one pure batched function of activations A and gradients g = dy/dA.

A and g are (B, K, h, w) float tensors; each function returns the raw (B, h, w) map before
post-processing. Adding a method = write a function and decorate it with ``@register("name")``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

GradientFn = Callable[..., torch.Tensor]
GRADIENT_REGISTRY: dict[str, GradientFn] = {}


def register(name: str) -> Callable[[GradientFn], GradientFn]:
    def deco(fn: GradientFn) -> GradientFn:
        GRADIENT_REGISTRY[name] = fn
        return fn

    return deco


def _weighted(w: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A_k for per-channel weights w (B, K)."""
    return torch.einsum("bk,bkhw->bhw", w, A)


@register("gradcam")
def gradcam(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    """Seg-Grad-CAM: channel weights = spatial mean of the gradient."""
    return _weighted(g.mean((2, 3)), A)


@register("gradcam++")
def gradcam_pp(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    """Grad-CAM++ (Chattopadhay et al., eq. 19) with the exponential's closed form, as the reference."""
    g2 = g * g
    S = A.sum((2, 3), keepdim=True)
    alpha = g2 / (2 * g2 + S * g2 * g + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    w = (torch.relu(g) * alpha).sum((2, 3))
    return _weighted(w, A)


@register("xgradcam")
def xgradcam(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    """XGrad-CAM: activation-weighted gradient sum normalised by the channel's activation sum."""
    S = A.sum((2, 3))
    w = (g * A).sum((2, 3)) / (S + 1e-7)
    return _weighted(w, A)


@register("hirescam")
def hirescam(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    """Seg-HiRes-Grad-CAM: element-wise product, no pooling (faithful to the score)."""
    return (g * A).sum(1)


@register("xrescam")
def xrescam(
    A: torch.Tensor, g: torch.Tensor, xres_pool: int = 2, xres_mode: str = "avg", **_
) -> torch.Tensor:
    """Seg-XRes-CAM: gradients pooled over a window, nearest-upsampled back, times A.

    ``ceil_mode`` keeps a partial last window so odd sizes are covered; avg ignores the padding.
    """
    h, w = g.shape[-2:]
    if xres_mode == "max":
        gp = F.max_pool2d(g, xres_pool, xres_pool, ceil_mode=True)
    elif xres_mode == "avg":
        gp = F.avg_pool2d(g, xres_pool, xres_pool, ceil_mode=True, count_include_pad=False)
    else:
        from segxai_cli.errors import SegxaiError

        raise SegxaiError(f"xres_mode must be 'avg' or 'max', got {xres_mode!r}")
    gp = gp.repeat_interleave(xres_pool, 2).repeat_interleave(xres_pool, 3)[..., :h, :w]
    return (gp * A).sum(1)


@register("layercam")
def layercam(A: torch.Tensor, g: torch.Tensor, **_) -> torch.Tensor:
    """LayerCAM: positive gradients as spatial weights."""
    return (torch.relu(g) * A).sum(1)

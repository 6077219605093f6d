"""Shapley-CAM (Cai et al. 2025): Grad-CAM weights corrected by a Hessian-vector product.

``w_k = mean_uv (g - ½ H A)_k`` with ``H A = d(g · A)/dA`` (the Hessian of the target score at the
layer, applied to the activations); ``map = sum_k w_k A_k``. Runs its own forward and a second-order
backward of the network after the layer. For a piecewise-linear suffix (convolutions, batch norm in
eval mode, ReLU, nearest or bilinear upsampling) and a logit target ``H A`` is zero and the map
equals Grad-CAM's; with ``use_probs`` (softmax/sigmoid) it differs.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext, layer_graph
from segxai_cli.cam.methods._channels import weighted_sum


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    A, y = layer_graph(ctx, i)
    if not y.requires_grad:
        return torch.zeros(A.shape[0], *A.shape[2:], device=A.device)
    (g,) = torch.autograd.grad(y.sum(), A, create_graph=True)
    (hvp,) = torch.autograd.grad(g, A, grad_outputs=A.detach(), allow_unused=True)
    w = g.detach().float() if hvp is None else (g.detach() - 0.5 * hvp).float()
    acts = ctx.adapter.activations
    return weighted_sum(acts(w).mean((2, 3)), acts(A.detach()).float())

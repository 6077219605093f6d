"""FEM, the Feature Explanation Method (Fuad et al. 2020): gradient-free and class-agnostic.

``w_k`` = the share of positions where ``A_k > mean_uv(A_k) + k_sigma · std_uv(A_k)`` (population
std, ``fem_k`` = 2); ``map = sum_k w_k A_k``. It does not depend on the target at all: the same
map for every class and region.
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum


def fem(A: torch.Tensor, k_sigma: float = 2.0) -> torch.Tensor:
    mean = A.mean((2, 3), keepdim=True)
    std = A.std((2, 3), unbiased=False, keepdim=True)
    w = (A > mean + k_sigma * std).to(A.dtype).mean((2, 3))
    return weighted_sum(w, A)


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    return fem(ctx.acts[i], float(ctx.opts.get("fem_k", 2.0)))

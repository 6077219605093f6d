"""Random-CAM: random channel weights, the floor every faithfulness table should beat.

``w_k ~ U(-1, 1)`` drawn once from a CPU generator seeded with ``random_seed`` (0), the same weights
for every image of every batch; ``map = sum_k w_k A_k``. pytorch-grad-cam's RandomCAM draws new
numpy weights per image and call; fixed weights keep a map reproducible and independent of how
tiles are batched (the formula and the weight distribution are the same).
"""

from __future__ import annotations

import torch

from segxai_cli.cam.context import CamContext
from segxai_cli.cam.methods._channels import weighted_sum


def random_weights(K: int, seed: int = 0) -> torch.Tensor:
    """(K,) weights uniform in [-1, 1), the same for a given seed on every device."""
    return torch.rand(K, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64) * 2 - 1


def compute(ctx: CamContext, i: int) -> torch.Tensor:
    A = ctx.acts[i]
    w = random_weights(A.shape[1], ctx.opts.get("random_seed", 0)).to(A.device, A.dtype)
    return weighted_sum(w.expand(A.shape[0], -1), A)

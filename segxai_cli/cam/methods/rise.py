"""RISE (Petsiuk et al. 2018): the model's score on randomly masked inputs, averaged over the masks.

Each mask is an ``s × s`` grid of cells kept with probability ``p``, upsampled bilinearly to
``(s + 1)`` cells and cropped at a random shift (smooth masks that do not align with a grid). The
masked input is ``x ⊙ M + baseline ⊙ (1 - M)`` in normalised space (baseline 0 = band mean) and its
score is the region's target score, as for the CAMs. The map is

    S = Σ_i (s_i - s̄) M_i / (N p)

— the paper's ``Σ s_i M_i / (N p)`` minus ``s̄ Σ M_i / (N p)``: the same in expectation up to a
constant (removed by the min-max), but without the per-pixel noise of Σ M_i that a large score
offset (a logit sum) would otherwise add. Masks are generated on the device from a seeded generator
(the same masks for every image of a batch: deterministic for a seed), ``perturb_chunk`` perturbed
images per forward, no host syncs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from segxai_cli.cam.context import CamContext
from segxai_cli.device import forward_chunk


def draw(n: int, cells: int, p: float, size: tuple[int, int], gen: torch.Generator,
         device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All the randomness of ``n`` masks, drawn at once (so chunking never changes the masks):
    the cell grids (n, s, s) and the shifts (n,), (n,) in pixels."""
    H, W = size
    grid = torch.rand(n, cells, cells, generator=gen, device=device) < p
    dy = torch.randint(0, math.ceil(H / cells), (n,), generator=gen, device=device)
    dx = torch.randint(0, math.ceil(W / cells), (n,), generator=gen, device=device)
    return grid, dy, dx


def rise_masks(grid: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Masks (n, H, W) in [0, 1]: grids upsampled to (s + 1) cells, cropped at the shifts."""
    H, W = size
    n, cells = grid.shape[0], grid.shape[1]
    ch, cw = math.ceil(H / cells), math.ceil(W / cells)
    up = F.interpolate(grid[:, None].float(), size=((cells + 1) * ch, (cells + 1) * cw), mode="bilinear",
                       align_corners=False)[:, 0]
    rows = (dy[:, None] + torch.arange(H, device=grid.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(W, device=grid.device))[:, None, :]
    return up[torch.arange(n, device=grid.device)[:, None, None], rows, cols]


@torch.no_grad()
def compute(ctx: CamContext) -> torch.Tensor:
    x, o = ctx.images, ctx.opts
    B, _, H, W = x.shape
    N, cells, p = int(o.get("rise_masks", 2000)), int(o.get("rise_cells", 8)), float(o.get("rise_p", 0.5))
    baseline = float(o.get("baseline", 0.0))
    per = max(1, forward_chunk(x, o.get("perturb_chunk")) // B)
    gen = torch.Generator(device=x.device).manual_seed(int(o.get("rise_seed", 0)))
    grid, dy, dx = draw(N, cells, p, (H, W), gen, x.device)
    weighted = torch.zeros(B, H, W, device=x.device)
    coverage = torch.zeros(H, W, device=x.device)
    total = torch.zeros(B, device=x.device)
    for start in range(0, N, per):
        n = min(per, N - start)
        M = rise_masks(grid[start:start + n], dy[start:start + n], dx[start:start + n], (H, W))
        m = M[None, :, None].to(x.dtype)
        inp = (x[:, None] * m + baseline * (1 - m)).flatten(0, 1)
        s = ctx.scores(ctx.forward(inp), ctx.region.repeat_interleave(n, 0)).float().view(B, n)
        weighted += torch.einsum("bn,nhw->bhw", s, M)
        coverage += M.sum(0)
        total += s.sum(1)
    return (weighted - (total / N)[:, None, None] * coverage) / (N * p)

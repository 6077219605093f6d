"""Blending weights and the strip accumulator: partition of unity, unfaded borders, streaming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from segxai_cli.tiling.blend import BlendWeights, StripAccumulator, axis_profile, axis_profiles, ramp
from segxai_cli.tiling.grid import TileGrid


def test_ramp_is_complementary_and_strictly_positive():
    for n in (1, 2, 7, 64):
        r = ramp(n)
        assert torch.all(r > 0) and torch.all(r < 1)
        torch.testing.assert_close(r + r.flip(0), torch.ones(n))


def test_axis_profile_does_not_fade_scene_borders():
    p = axis_profile(64, 0, 16)  # first window: left side is the scene border
    assert p[0] == 1 and torch.all(p[:48] == 1)
    assert p[-1] < 0.05
    q = axis_profile(64, 16, 0)  # last window
    assert q[-1] == 1 and q[0] < 0.05


@pytest.mark.parametrize("length,tile,overlap", [(300, 64, 16), (256, 64, 16), (64, 64, 16), (40, 64, 16), (500, 64, 24), (130, 64, 0)])
def test_profiles_sum_to_one_over_the_axis(length, tile, overlap):
    """Including the edge-snapped last window and exact multiples: a partition of unity (overlaps
    below half a tile; above, three windows can share a pixel and the division by sum(w) does it)."""
    grid = TileGrid(length, 1, tile, overlap)
    starts = grid.cols
    total = torch.zeros(length)
    for s, p in zip(starts, axis_profiles(starts, tile, length)):
        total[s:s + p.numel()] += p
    torch.testing.assert_close(total, torch.ones(length))


def _stitch(H, W, tile, overlap, window_values, block=32, channels=1):
    """Run the accumulator over a grid; window_values(r, c, h, w) -> (C, h, w). Returns (C, H, W)."""
    grid = TileGrid(W, H, tile, overlap)
    bw = BlendWeights(grid.rows, grid.cols, tile, H, W)
    acc = StripAccumulator(W, H, channels, tile, block)
    out = torch.full((channels, H, W), float("nan"))
    rows_seen = []
    cur = -1

    def take(strips):
        for s in strips:
            assert s.row0 % block == 0
            assert s.height % block == 0 or s.row0 + s.height == H
            rows_seen.append((s.row0, s.height))
            out[:, s.row0:s.row0 + s.height] = s.sums
            assert torch.all(s.computed)

    for win in grid.windows():
        r, c, h, w = int(win.row_off), int(win.col_off), int(win.height), int(win.width)
        if r != cur:
            if cur >= 0:
                take(acc.advance(r))
            cur = r
        acc.add(r, c, window_values(r, c, h, w), bw.window(r, c))
        acc.mark_valid(r, c, torch.ones(h, w, dtype=torch.bool))
    take(acc.finish())
    # every row exactly once, in order
    assert sum(h for _, h in rows_seen) == H
    assert [r for r, _ in rows_seen] == sorted(r for r, _ in rows_seen)
    assert acc.rows <= tile + block
    return out


@pytest.mark.parametrize("H,W,ov", [(300, 350, 16), (256, 256, 16), (40, 50, 16), (64, 200, 16), (97, 64, 16), (300, 500, 32)])
def test_constant_and_smooth_fields_stitch_exactly(H, W, ov):
    """Windows that agree (a global field sampled per window) stitch back to that field exactly."""
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    field = torch.stack([torch.ones(H, W) * 3.0, torch.sin(xx / 17.0) + torch.cos(yy / 11.0)])
    out = _stitch(H, W, 64, ov, lambda r, c, h, w: field[:, r:r + h, c:c + w], channels=2)
    torch.testing.assert_close(out, field, atol=1e-5, rtol=1e-5)


def test_disagreeing_windows_blend_smoothly():
    """Per-window constants (worst case for seams): the blend has no jump larger than the ramp allows."""
    H, W, tile, ov = 200, 200, 64, 32
    rng = np.random.default_rng(0)
    vals = {}

    def values(r, c, h, w):
        v = vals.setdefault((r, c), float(rng.uniform(0, 1)))
        return torch.full((1, h, w), v)

    out = _stitch(H, W, tile, ov, values)[0]
    jumps = (out[:, 1:] - out[:, :-1]).abs().max()
    # a hard seam would jump by up to ~1; raised-cosine ramps over 32 px spread it out
    assert jumps < 0.15


def test_scene_smaller_than_tile_is_unweighted():
    out = _stitch(20, 30, 64, 16, lambda r, c, h, w: torch.full((1, h, w), 0.5))
    assert out.shape == (1, 20, 30)
    torch.testing.assert_close(out, torch.full((1, 20, 30), 0.5))


def test_rows_out_of_order_are_refused():
    acc = StripAccumulator(100, 1000, 1, 64, 32)
    acc.add(0, 0, torch.ones(1, 64, 64), torch.ones(64, 64))
    acc.advance(500)
    with pytest.raises(RuntimeError, match="row-major"):
        acc.add(0, 0, torch.ones(1, 64, 64), torch.ones(64, 64))


def test_accumulator_memory_does_not_grow_with_height():
    small = StripAccumulator(1000, 2_000, 3, 256, 256)
    huge = StripAccumulator(1000, 200_000, 3, 256, 256)
    assert small.sums.shape == huge.sums.shape == (3, 512, 1000)

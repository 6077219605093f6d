"""The pieces under the synthetic renderer: hashes, noise, grid layout, the objects of a block.

Values pinned here were computed with the generator before it was split into ``segxai_cli.synth``;
a change in any of them changes every scene (and the sample scenes would no longer be reproduced).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from segxai_cli.synth.blocks import _FILL, _cell_objects
from segxai_cli.synth.layout import FIELD, INDUSTRIAL, PARK, RESIDENTIAL, _block_type, _params
from segxai_cli.synth.noise import _ahash, _shash, _sunif, _vnoise


def test_scalar_hashes_pinned():
    assert _shash(1, 2, 3) == 0xCBFB8E8191E89426
    assert _shash(0) == 0xC0E16B163A85A4DC
    assert _sunif(7, 4, 0, 0) == 0.5840919448978767


def test_vector_hash_and_value_noise_pinned():
    h = _ahash(np.arange(-2, 3, dtype=np.int64)[None, :], np.arange(3, dtype=np.int64)[:, None], 12345)
    assert [int(v) for v in h.ravel()[:4]] == [
        0x83A5D0FAA8E05512, 0xF2CC918F7308594D, 0x79A8BD6CF99585EC, 0x4C7E931E2AA6BA11,
    ]
    assert hashlib.sha256(h.tobytes()).hexdigest()[:16] == "07e3faf68f3dd974"
    v = _vnoise(np.arange(-50, 50) + 0.5, np.arange(30) + 0.5, 11.0, 99)
    assert v.dtype == np.float32 and v.shape == (30, 100)
    assert hashlib.sha256(v.tobytes()).hexdigest()[:16] == "0c1fdcd0eef3bc4b"


def test_value_noise_depends_on_global_coordinates_only():
    xs, ys = np.arange(-40, 60) + 0.5, np.arange(10, 70) + 0.5
    full = _vnoise(xs, ys, 7.3, 5)
    part = _vnoise(xs[33:71], ys[12:50], 7.3, 5)
    assert np.array_equal(part, full[12:50, 33:71])
    assert 0.0 <= full.min() and full.max() <= 1.0


def test_layout_pinned():
    p = _params(1)
    assert p.cell_u == 343.127161012273 and p.cell_v == 337.4632332012814
    assert [_block_type(1, i, 0) for i in range(8)] == [0, 1, 1, 2, 3, 3, 3, 0]


def _objects_of(seed, i, j):
    return [o for group in _cell_objects(seed, i, j) for o in group]


def test_block_objects_stay_near_their_block():
    # The renderer looks at the blocks up to two pitches beyond a window; objects (with their
    # shadows) must not reach further than one pitch out of their own block.
    worst = 0.0
    for seed in range(1, 7):
        p = _params(seed)
        for i in range(-3, 4):
            for j in range(-3, 4):
                for o in _objects_of(seed, i, j):
                    x0, y0, x1, y1 = o.bbox
                    for x, y in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
                        fu = (x * p.ca + y * p.sa) / p.cell_u - i
                        fv = (-x * p.sa + y * p.ca) / p.cell_v - j
                        worst = max(worst, -fu, fu - 1, -fv, fv - 1)
    assert worst < 1.0


def test_every_block_type_is_filled():
    assert set(_FILL) == {RESIDENTIAL, INDUSTRIAL, PARK, FIELD}
    filled = {}
    for seed in range(1, 7):
        for i in range(-3, 4):
            for j in range(-3, 4):
                pads, buildings, trees = _cell_objects(seed, i, j)
                kind = _block_type(seed, i, j)
                filled[kind] = filled.get(kind, 0) + len(pads) + len(buildings) + len(trees)
    assert all(filled.get(kind, 0) > 0 for kind in _FILL), filled


@pytest.mark.parametrize("block", [(0, 0), (2, -1), (-3, 3)])
def test_block_objects_do_not_depend_on_call_order(block):
    seed = 4
    first = _objects_of(seed, *block)
    _cell_objects.cache_clear()
    for i in range(-2, 3):  # other blocks first: each block has its own generator
        _cell_objects(seed, i, 1)
    assert _objects_of(seed, *block) == first

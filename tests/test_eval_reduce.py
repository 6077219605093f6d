"""Reduced inputs for M1/M2/M3: the kept pixels and the fill values."""

from __future__ import annotations

import pytest
import torch

from segxai_cli.errors import SegxaiError
from segxai_cli.evaluation.reduce import (
    apply_keep,
    binarize,
    fill_values,
    gaussian_blur,
    keep_mask,
    reduced_inputs,
)
from segxai_cli.raster.stats import BandStats

SAL = torch.tensor([[0.0, 0.2, 0.5, 1.0]] * 2)[None]  # (1, 2, 4)
TGT = torch.tensor([[True, False, False, False], [True, True, False, False]])[None]


def test_binarize_is_greater_or_equal():
    assert binarize(SAL, 0.5).tolist() == [[[False, False, True, True]] * 2]
    assert binarize(SAL, 0.0).all()
    assert binarize(SAL, 1.0).sum() == 2


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan")])
def test_threshold_outside_unit_interval_is_an_error(t):
    with pytest.raises(SegxaiError, match="outside"):
        binarize(SAL, t)


def test_keep_masks_m1_m2_m3():
    phi = binarize(SAL, 0.5)
    assert keep_mask("M1", phi, TGT).tolist() == [[[True, True, False, False]] * 2]
    assert keep_mask("M2", phi, TGT).tolist() == [[[False, False, True, True]] * 2]
    assert keep_mask("M3", phi, TGT).tolist() == [[[True, False, True, True], [True, True, True, True]]]
    with pytest.raises(SegxaiError):
        keep_mask("M4", phi, TGT)


def test_fill_values():
    x = torch.arange(16, dtype=torch.float32).view(1, 2, 2, 4)
    assert torch.equal(fill_values(x, "mean"), torch.zeros_like(x))  # 0 = band mean in normalised space
    stats = BandStats((100.0, 20.0), (50.0, 10.0))
    z = fill_values(x, "zero", stats)  # the normalised value of a raw 0: -mean/std
    assert z[0, 0].unique().tolist() == [-2.0] and z[0, 1].unique().tolist() == [-2.0]
    stats = BandStats((100.0, 30.0), (50.0, 10.0))
    assert fill_values(x, "zero", stats)[0, 1].unique().tolist() == [-3.0]
    with pytest.raises(SegxaiError):
        fill_values(x, "zero", None)
    with pytest.raises(SegxaiError):
        fill_values(x, "noise")


def test_blur_fill_keeps_constants_and_smooths():
    c = torch.full((1, 3, 16, 16), 2.5)
    assert torch.allclose(gaussian_blur(c, 2.0), c)
    spike = torch.zeros(1, 1, 17, 17)
    spike[0, 0, 8, 8] = 1.0
    b = gaussian_blur(spike, 1.5)
    assert b.sum().item() == pytest.approx(1.0, rel=1e-4)  # mass preserved
    assert b[0, 0, 8, 8] < 0.2 and b[0, 0, 8, 9] > 0
    assert fill_values(spike, "blur", blur_sigma=1.5).shape == spike.shape


def test_reduced_inputs_values_and_nodata_kept():
    x = torch.full((1, 2, 2, 4), 5.0)
    valid = torch.ones(1, 2, 4, dtype=torch.bool)
    valid[0, 0, 3] = False  # nodata and salient: M1 would fill it, but nodata is never filled
    out = reduced_inputs(x, SAL, TGT, 0.5, fill="mean", valid=valid)
    assert out["M1"][0, 0].tolist() == [[5.0, 5.0, 0.0, 5.0], [5.0, 5.0, 0.0, 0.0]]
    assert out["M2"][0, 1].tolist() == [[0.0, 0.0, 5.0, 5.0], [0.0, 0.0, 5.0, 5.0]]
    assert out["M3"][0, 0].tolist() == [[5.0, 0.0, 5.0, 5.0], [5.0, 5.0, 5.0, 5.0]]
    stats = BandStats((100.0, 100.0), (50.0, 25.0))
    z = reduced_inputs(x, SAL, TGT, 0.5, modes=["M2"], fill="zero", stats=stats)["M2"]
    assert z[0, 0, 0].tolist() == [-2.0, -2.0, 5.0, 5.0] and z[0, 1, 0].tolist() == [-4.0, -4.0, 5.0, 5.0]


def test_apply_keep_soft_weights():
    x = torch.full((1, 1, 1, 3), 4.0)
    f = torch.zeros_like(x)
    w = torch.tensor([[[1.0, 0.5, 0.0]]])
    assert apply_keep(x, f, w)[0, 0, 0].tolist() == [4.0, 2.0, 0.0]

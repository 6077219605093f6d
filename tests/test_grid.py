import numpy as np
import pytest

from segxai_cli.tiling.grid import TileGrid, axis_starts, overlap_from_fraction


def coverage(grid: TileGrid) -> np.ndarray:
    cov = np.zeros((grid.height, grid.width), int)
    for w in grid.windows():
        cov[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
    return cov


@pytest.mark.parametrize("size", [(256, 256), (512, 768), (300, 1000), (257, 255), (100, 40), (1, 1)])
@pytest.mark.parametrize("overlap", [0, 64, 128])
def test_every_pixel_covered_and_windows_inside(size, overlap):
    h, w = size
    grid = TileGrid(w, h, 256, overlap)
    assert coverage(grid).min() >= 1
    for win in grid.windows():
        assert win.col_off >= 0 and win.row_off >= 0
        assert win.col_off + win.width <= w and win.row_off + win.height <= h
        # full tile size wherever the scene allows it
        assert win.width == min(256, w) and win.height == min(256, h)


def test_exact_multiple_has_no_extra_window():
    assert axis_starts(1024, 256, 256) == [0, 256, 512, 768]
    assert axis_starts(1024, 256, 192) == [0, 192, 384, 576, 768]


def test_last_window_snapped_to_edge():
    assert axis_starts(1000, 256, 192) == [0, 192, 384, 576, 744]
    assert axis_starts(200, 256, 192) == [0]


def test_overlap_validation():
    with pytest.raises(ValueError):
        TileGrid(10, 10, 256, 256)
    assert overlap_from_fraction(256, 0.25) == 64
    with pytest.raises(ValueError):
        overlap_from_fraction(256, 1.0)

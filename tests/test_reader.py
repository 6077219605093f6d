import numpy as np
import pytest
import torch
from rasterio.windows import Window

from segxai_cli.errors import InputError
from segxai_cli.raster.reader import NoCRSWarning, check_bands, open_raster, read_window
from segxai_cli.raster.stats import compute_band_stats
from segxai_cli.tiling.tiles import normalize


def test_not_a_geotiff(tmp_path):
    p = tmp_path / "x.tif"
    p.write_text("hello")
    with pytest.raises(InputError, match="not a readable GeoTIFF"):
        open_raster(p)
    with pytest.raises(InputError, match="no such file"):
        open_raster(tmp_path / "missing.tif")


def test_no_crs_warns(make_geotiff):
    p = make_geotiff("nocrs.tif", np.zeros((3, 8, 8), np.uint8), crs=None)
    with pytest.warns(NoCRSWarning):
        open_raster(p).close()
    with pytest.raises(InputError, match="no CRS"):
        open_raster(p, require_crs=True)


def test_band_selection_is_one_based(make_geotiff):
    arr = np.stack([np.full((8, 8), v, np.uint16) for v in (10, 20, 30, 40)])
    p = make_geotiff("b.tif", arr)
    with open_raster(p) as src:
        data, valid = read_window(src, Window(0, 0, 8, 8), check_bands(src, [4, 1]))
        assert data.dtype == np.float32 and data[0, 0, 0] == 40 and data[1, 0, 0] == 10
        assert valid.all()
        with pytest.raises(InputError, match="1-based"):
            check_bands(src, [0])
        with pytest.raises(InputError, match="4 band"):
            check_bands(src, [5])


def test_nodata_mask_and_stats_ignore_nodata(make_geotiff):
    arr = np.full((2, 32, 32), 1000, np.uint16)
    arr[1] = 3000
    arr[:, :, :8] = 0  # nodata strip
    p = make_geotiff("n.tif", arr, nodata=0)
    with open_raster(p) as src:
        data, valid = read_window(src, Window(0, 0, 32, 32), [1, 2])
    assert not valid[:, :8].any() and valid[:, 8:].all()
    stats = compute_band_stats([p], [1, 2])
    assert stats.mean == pytest.approx((1000.0, 3000.0))
    assert stats.std == (1.0, 1.0)  # constant bands: std clamped to 1, never divide by 0
    norm = normalize(torch.from_numpy(data)[None], torch.from_numpy(valid)[None], stats)[0].numpy()
    assert np.all(norm[:, :, :8] == 0) and np.all(norm[:, :, 8:] == 0)


def test_float_nan_is_invalid(make_geotiff):
    arr = np.ones((1, 16, 16), np.float32)
    arr[0, 0, 0] = np.nan
    p = make_geotiff("f.tif", arr)
    with open_raster(p) as src:
        _, valid = read_window(src, Window(0, 0, 16, 16), [1])
    assert not valid[0, 0] and valid.sum() == 255

"""GDAL's ``STATISTICS_*`` band metadata of a raster, accumulated while its strips are written.

With them in the file QGIS and ``gdalinfo`` show min/max/mean/stddev without scanning it. They are
exact for what is finally written: the per-band rescale of ``--normalize scene`` (``v * ratio + off``)
is applied to the accumulated sums; with clamping (a map clipped to its region: exact zeros outside,
the region's values ≥ its minimum) only pixels that are exactly 0 fall below the range and stay 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import numpy as np


class RunningStatistics:
    """Per band, over non-nodata pixels: count, sum, sum of squares, exact zeros, min and max."""

    def __init__(self, count: int, nodata: Optional[float]) -> None:
        self.count, self.nodata = count, nodata
        self.sums = np.zeros((count, 4))
        self.lo = np.full(count, np.inf)
        self.hi = np.full(count, -np.inf)

    def add(self, arr: np.ndarray) -> None:
        """Rows of every band, (count, h, w)."""
        for b in range(arr.shape[0]):
            v = arr[b]
            ok = np.isfinite(v) if self.nodata is None or math.isnan(self.nodata) else (v != self.nodata)
            v = v[ok].astype(np.float64)
            if v.size:
                self.sums[b] += (v.size, v.sum(), (v * v).sum(), np.count_nonzero(v == 0))
                self.lo[b], self.hi[b] = min(self.lo[b], v.min()), max(self.hi[b], v.max())

    def statistics(self, pixels: int, scale: Sequence[tuple[float, float]] | None = None,
                   clamp: bool = False) -> list[dict[str, float]]:
        """``STATISTICS_*`` of each band after the optional rescale (see the module docstring);
        ``pixels``: the raster's size, for ``STATISTICS_VALID_PERCENT``."""
        out = []
        for b in range(self.count):
            n, s1, s2, zeros = (float(x) for x in self.sums[b])
            if not n:
                out.append({})
                continue
            lo, hi = float(self.lo[b]), float(self.hi[b])
            if scale is not None:
                off, ratio = scale[b]
                kept = n - (zeros if clamp and off < 0 else 0)  # clamped zeros stay 0
                s1, s2 = ratio * s1 + off * kept, ratio * ratio * s2 + 2 * ratio * off * s1 + off * off * kept
                lo, hi = (0.0 if kept < n else lo * ratio + off), hi * ratio + off
                if clamp:
                    lo, hi = max(lo, 0.0), min(max(hi, 0.0), 1.0)
            mean = s1 / n
            out.append({"STATISTICS_MINIMUM": lo, "STATISTICS_MAXIMUM": hi, "STATISTICS_MEAN": mean,
                        "STATISTICS_STDDEV": math.sqrt(max(0.0, s2 / n - mean * mean)),
                        "STATISTICS_VALID_PERCENT": 100.0 * n / pixels})
        return out

"""Uncertainty of the study's means: bootstrap confidence intervals and paired tests (numpy, seeded).

- :func:`mean_ci` -- the mean of each column and its 95 % percentile-bootstrap interval, resampling
  whole *units* (tiles; objects in the per-object study): a unit with several rows (or a scene, when
  scenes are the unit) is drawn with all of them, so the interval is the cluster bootstrap of a ratio
  mean. NaN values are skipped per column, as the summary's means skip them.
- :func:`paired_test` -- two methods on the same units: the mean difference, its paired-bootstrap
  95 % interval and the two-sided sign-flip permutation p-value (Monte Carlo, ``n + 1`` in the
  denominator so p is never 0).

Every random draw comes from :func:`rng_for` (the run's ``--seed`` and a stable key of the group),
so a group's interval does not depend on which other groups exist or in what order they are computed.
Resamples are drawn as index blocks and reduced with ``bincount`` and one matrix product per block:
the cost is ``O(n_boot × units)``, negligible beside the model forwards.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95
_BLOCK_CELLS = 2_000_000  # resample matrix cells per block (memory bound: 16 MB of float64)


def rng_for(seed: int, *key: Hashable) -> np.random.Generator:
    """A generator for one group: the run's seed and a stable hash of ``key`` (CRC-32 of its repr)."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(repr(key).encode())])


def _resample_counts(rng: np.random.Generator, n_units: int, n_draws: int) -> np.ndarray:
    """(n_draws, n_units) counts: how often each unit is drawn in each bootstrap resample."""
    idx = rng.integers(0, n_units, size=(n_draws, n_units))
    flat = idx + (np.arange(n_draws)[:, None] * n_units)
    return np.bincount(flat.ravel(), minlength=n_draws * n_units).reshape(n_draws, n_units).astype(np.float64)


def _blocks(n_boot: int, n_units: int) -> list[int]:
    size = max(1, _BLOCK_CELLS // max(1, n_units))
    return [min(size, n_boot - s) for s in range(0, n_boot, size)]


def bootstrap_means(sums: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, m) resampled means from per-unit ``sums`` and ``counts`` (n_units, m); NaN where empty."""
    out = []
    for size in _blocks(n_boot, sums.shape[0]):
        w = _resample_counts(rng, sums.shape[0], size)
        num, den = w @ sums, w @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(den > 0, num / np.where(den > 0, den, 1), np.nan))
    return np.concatenate(out) if out else np.empty((0, sums.shape[1]))


def unit_sums(values: np.ndarray, units: Sequence[Hashable] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit sums and counts of the finite values of each column: (n_units, m) each, units in first-seen order."""
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    finite = np.isfinite(values)
    clean = np.where(finite, values, 0.0)
    if units is None:
        return clean, finite.astype(np.float64)
    ids: dict[Hashable, int] = {}
    inv = np.array([ids.setdefault(u, len(ids)) for u in units], dtype=np.int64)
    sums = np.zeros((len(ids), values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, inv, clean)
    np.add.at(counts, inv, finite.astype(np.float64))
    return sums, counts


@dataclass
class MeanCI:
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


def mean_ci(values: np.ndarray, units: Sequence[Hashable] | None = None, n_boot: int = 2000,
            rng: np.random.Generator | None = None, level: float = LEVEL) -> MeanCI:
    """Mean of each column (NaN skipped) and its percentile-bootstrap interval over units.

    ``values`` (n_rows,) or (n_rows, m); ``units``: the unit of each row (None: every row is a unit).
    The interval is NaN with fewer than two units holding a finite value, or when ``n_boot`` is 0.
    """
    values = np.asarray(values, dtype=np.float64)
    one = values.ndim == 1
    sums, counts = unit_sums(values, units)
    with np.errstate(invalid="ignore", divide="ignore"):
        tot = counts.sum(0)
        mean = np.where(tot > 0, sums.sum(0) / np.where(tot > 0, tot, 1), np.nan)
    low = np.full_like(mean, np.nan)
    high = np.full_like(mean, np.nan)
    usable = (counts > 0).sum(0) >= 2
    if n_boot > 0 and usable.any():
        rng = rng if rng is not None else np.random.default_rng(0)
        boots = bootstrap_means(sums[:, usable], counts[:, usable], n_boot, rng)
        a = (1 - level) / 2
        with np.errstate(invalid="ignore"):
            low[usable], high[usable] = np.nanquantile(boots, [a, 1 - a], axis=0)
    if one:
        return MeanCI(mean[:1], low[:1], high[:1])
    return MeanCI(mean, low, high)


@dataclass
class Paired:
    n: int  # units with both values finite
    mean_a: float
    mean_b: float
    diff: float  # mean of a - b
    low: float
    high: float
    p_value: float

    @property
    def distinguishable(self) -> bool:
        """The 95 % interval of the difference excludes 0 and the sign-flip p-value is below 0.05."""
        return bool(self.n >= 2 and (self.low > 0 or self.high < 0) and self.p_value < 1 - LEVEL)


def paired_test(a: Sequence[float], b: Sequence[float], n_boot: int = 2000,
                rng: np.random.Generator | None = None, level: float = LEVEL) -> Paired:
    """Paired comparison of two methods measured on the same units (NaN pairs dropped)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = int(a.size)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    d = a - b
    diff = float(d.mean())
    if n < 2 or n_boot <= 0:
        return Paired(n, float(a.mean()), float(b.mean()), diff, math.nan, math.nan, math.nan)
    rng = rng if rng is not None else np.random.default_rng(0)
    boots = bootstrap_means(d[:, None], np.ones((n, 1)), n_boot, rng)[:, 0]
    al = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(boots, [al, 1 - al]))
    return Paired(n, float(a.mean()), float(b.mean()), diff, low, high, sign_flip_p(d, n_boot, rng))


def sign_flip_p(d: np.ndarray, n_perm: int, rng: np.random.Generator) -> float:
    """Two-sided sign-flip permutation p-value of ``mean(d) = 0`` (``(1 + hits) / (1 + n_perm)``)."""
    d = np.asarray(d, dtype=np.float64)
    obs = abs(float(d.mean()))
    if obs == 0.0:
        return 1.0
    hits = 0
    tol = 1e-12 * max(1.0, float(np.abs(d).max()))
    for size in _blocks(n_perm, d.size):
        signs = rng.integers(0, 2, size=(size, d.size)) * 2.0 - 1.0
        hits += int((np.abs(signs @ d) / d.size >= obs - tol).sum())
    return (1 + hits) / (1 + n_perm)

"""Training data: scene/mask pairs, their validation, and random windows (like TorchGeo's RandomGeoSampler).

Pairs are matched by file name. For a scene ``<stem>.tif`` the mask is, among the MASKS files:

1. ``<stem>_mask.tif`` (or ``.tiff``), or else
2. a file with the same name as the scene (e.g. ``images/a.tif`` and ``masks/a.tif``).

IMAGES and MASKS may each be a file, a folder (its ``*.tif``/``*.tiff`` files) or a glob; files whose
stem ends in ``_mask`` are never taken as scenes, so both may name the same folder or glob.

Masks hold a class index per pixel (0..classes-1). The mask's nodata pixels, the value 255 and the
scene's nodata pixels are ignored (:data:`IGNORE_INDEX`) by the loss and the metrics.

Validation is a fixed, seeded set of tile-sized cells on each scene's window grid (the last row and
column snapped to the scene edge). Their labels are never used for training: training windows are
drawn at random positions, and any pixel inside a validation cell is set to :data:`IGNORE_INDEX`.
Windows that are mostly nodata (or validation) are redrawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from segxai_cli.errors import InputError
from segxai_cli.raster.inputs import MASK_SUFFIX, expand_paths, match_masks
from segxai_cli.raster.reader import check_bands, open_raster_quiet, read_window
from segxai_cli.raster.source import RasterSource
from segxai_cli.raster.stats import BandStats, grid_windows
from segxai_cli.tiling.grid import TileGrid
from segxai_cli.tiling.tiles import normalize, pad_tile

IGNORE_INDEX = 255


# --------------------------------------------------------------------------------------------------
# Finding and matching files (the rules shared by every command: segxai_cli.raster.inputs)


def match_pairs(images: Sequence[str | Path] | str | Path, masks: Sequence[str | Path] | str | Path) -> list[tuple[RasterSource, RasterSource]]:
    """Pair every scene with its mask (see the module docstring for the rule)."""
    images = [images] if isinstance(images, (str, Path)) else list(images)
    masks = [masks] if isinstance(masks, (str, Path)) else list(masks)
    scene_files, problems = expand_paths(images)
    for spec, reason in problems:
        raise InputError(f"IMAGES {spec}: {reason}")
    for f in scene_files:
        if not f.exists():
            raise InputError(f"IMAGES {f}: no such file or folder")
    if not scene_files:
        raise InputError(f"IMAGES {' '.join(map(str, images))}: no scenes (only *_mask files)")
    matched = match_masks(scene_files, masks)
    missing = [str(s) for s, m in matched.items() if m is None]
    if missing:
        raise InputError(
            f"no mask for {len(missing)} scene(s): {', '.join(missing)} "
            f"(expected <stem>{MASK_SUFFIX}.tif or a file of the same name among MASKS)"
        )
    return [(s, m) for s, m in matched.items() if m is not None]


# --------------------------------------------------------------------------------------------------
# Validating pairs


@dataclass
class ScenePair:
    """One scene and its mask, validated (no pixel data)."""

    image: RasterSource
    mask: RasterSource
    width: int
    height: int
    count: int
    dtype: str
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))

    @property
    def area(self) -> int:
        return self.width * self.height


def validate_pairs(
    pairs: Sequence[tuple[RasterSource, RasterSource]], *, bidx: Sequence[int] | None, classes: int, block: int = 512
) -> tuple[list[ScenePair], list[int]]:
    """Open every pair and check it before any training: GeoTIFFs, same grid, bands, mask values.

    Returns the validated pairs and the 1-based band indexes to use. Mask values are scanned window
    by window; values >= ``classes`` (other than 255 / the mask's nodata) are an error. A binary
    model (``classes=1``) takes masks of 0/1.
    """
    n_values = max(classes, 2)
    out: list[ScenePair] = []
    counts: set[int] = set()
    dtypes: set[str] = set()
    for image, mask in pairs:
        with open_raster_quiet(image) as src, open_raster_quiet(mask) as msrc:
            if (src.width, src.height) != (msrc.width, msrc.height):
                raise InputError(
                    f"{mask}: size {msrc.width}x{msrc.height} does not match scene {image} ({src.width}x{src.height})"
                )
            if not src.transform.almost_equals(msrc.transform, precision=1e-6 * max(1.0, abs(src.transform.a))):
                raise InputError(f"{mask}: pixel grid (transform) differs from scene {image}")
            if (src.crs is None) != (msrc.crs is None) or (src.crs is not None and src.crs != msrc.crs):
                raise InputError(f"{mask}: CRS {msrc.crs} differs from scene {image} ({src.crs})")
            if msrc.count != 1:
                raise InputError(f"{mask}: a mask must have 1 band (class index per pixel), it has {msrc.count}")
            if bidx is not None:
                check_bands(src, bidx)
            counts.add(src.count)
            dtypes.add(src.dtypes[0])
            pair = ScenePair(image, mask, src.width, src.height, src.count, src.dtypes[0])
            if not np.issubdtype(np.dtype(msrc.dtypes[0]), np.integer):
                raise InputError(f"{mask}: mask data type is {msrc.dtypes[0]}; expected integers (class index per pixel)")
            for win in grid_windows(msrc.width, msrc.height, block):
                values, valid = read_mask_window(msrc, win)
                v = values[valid]
                if v.size and (int(v.min()) < 0 or int(v.max()) >= n_values):
                    bad = np.unique(v[(v < 0) | (v >= n_values)])
                    shown = ", ".join(str(int(b)) for b in bad[:8])
                    raise InputError(
                        f"{mask}: has value(s) {shown} but --classes {classes} allows 0..{n_values - 1} "
                        f"({IGNORE_INDEX} or the mask's nodata = ignore)"
                    )
                pair.class_counts[: n_values] += np.bincount(v.astype(np.int64).ravel(), minlength=n_values)[:n_values]
            out.append(pair)
    if bidx is None:
        if len(counts) > 1:
            raise InputError(
                f"scenes have different band counts ({', '.join(map(str, sorted(counts)))}); choose bands present in all with -b/--bidx"
            )
        bidx = list(range(1, counts.pop() + 1))
    if len(dtypes) > 1:
        raise InputError(f"scenes have different data types ({', '.join(sorted(dtypes))}); normalisation needs one source type")
    return out, list(bidx)


def read_mask_window(msrc, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Mask values (h, w) int64 and validity (not nodata and not 255)."""
    values = msrc.read(1, window=window).astype(np.int64)
    valid = msrc.read_masks(1, window=window) > 0
    valid &= values != IGNORE_INDEX
    return values, valid


# --------------------------------------------------------------------------------------------------
# Windows


@dataclass(frozen=True)
class WindowRef:
    scene: int  # index into the pairs
    window: Window


def cell_grid(width: int, height: int, tile: int) -> list[Window]:
    """Tile-sized cells covering the scene; the last row/column snapped to the edge (never dropped)."""
    return list(TileGrid(width, height, tile).windows())


class WindowSampler:
    """Reads training and validation samples from validated scene/mask pairs.

    Datasets are opened once (this object belongs to one thread/process) and closed by :meth:`close`.
    Samples are float32 normalised images (bands, tile, tile) and int64 targets (tile, tile) with
    :data:`IGNORE_INDEX` where there is no label; scenes smaller than a tile are padded with ignore.
    """

    def __init__(
        self,
        pairs: Sequence[ScenePair],
        bidx: Sequence[int],
        stats: BandStats,
        *,
        tile_size: int,
        val_fraction: float,
        seed: int,
        min_valid: float = 0.5,
        crop_size: int | None = None,
        jitter: float = 0.0,
    ) -> None:
        self.pairs = list(pairs)
        self.bidx = list(bidx)
        self.stats = stats
        self.tile = int(tile_size)
        self.crop = int(crop_size or tile_size)  # training windows; validation cells are tile-sized
        self.jitter = float(jitter)
        self.min_valid = float(min_valid)
        self._src = [open_raster_quiet(p.image) for p in self.pairs]
        self._msrc = [open_raster_quiet(p.mask) for p in self.pairs]
        self.val_cells = self._choose_val_cells(val_fraction, seed)
        self._val_by_scene: dict[int, list[Window]] = {}
        for ref in self.val_cells:
            self._val_by_scene.setdefault(ref.scene, []).append(ref.window)
        areas = np.array([p.area for p in self.pairs], np.float64)
        self._scene_p = areas / areas.sum()

    # -- validation split ---------------------------------------------------------------------------
    def _choose_val_cells(self, val_fraction: float, seed: int) -> list[WindowRef]:
        if val_fraction <= 0:
            return []
        if val_fraction >= 1:
            raise InputError(f"--val-fraction {val_fraction}: must be below 1")
        cells = [WindowRef(i, w) for i, p in enumerate(self.pairs) for w in cell_grid(p.width, p.height, self.tile)]
        # Only cells that are mostly labelled are worth validating on.
        usable = [c for c in cells if self._labelled_fraction(c.scene, c.window) >= self.min_valid]
        if len(usable) < 2:
            raise InputError(
                f"too little labelled data for a validation split: {len(usable)} usable {self.tile}x{self.tile} "
                "cell(s); use smaller --tile-size, more scenes, or --val-fraction 0"
            )
        n_val = min(len(usable) - 1, max(1, round(val_fraction * len(usable))))
        rng = np.random.default_rng([int(seed), 7919])
        chosen = sorted(rng.choice(len(usable), size=n_val, replace=False).tolist())
        return [usable[i] for i in chosen]

    def _labelled_fraction(self, scene: int, window: Window) -> float:
        _, target = self.read(scene, window, normalise=False)
        return float((target != IGNORE_INDEX).mean())

    # -- reading ---------------------------------------------------------------------------------------
    def read(
        self, scene: int, window: Window, *, normalise: bool = True, size: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Image (bands, size, size) float32 and target (size, size) int64, padded (default: the tile size)."""
        size = size or self.tile
        src, msrc = self._src[scene], self._msrc[scene]
        data, valid = read_window(src, window, self.bidx)
        values, mvalid = read_mask_window(msrc, window)
        h, w = valid.shape
        img = np.zeros((len(self.bidx), size, size), np.float32)
        tgt = np.full((size, size), IGNORE_INDEX, np.int64)
        if normalise:  # the one tile rule (tiling.tiles): pad, then where(valid, (x - mean) / std, 0)
            x, v = pad_tile(data, valid, size)
            img = normalize(x[None], v[None], self.stats)[0].numpy()
        ok = valid & mvalid
        tgt[:h, :w] = np.where(ok, values, IGNORE_INDEX)
        return img, tgt

    def random_window(self, rng: np.random.Generator) -> WindowRef:
        scene = int(rng.choice(len(self.pairs), p=self._scene_p))
        p = self.pairs[scene]
        w, h = min(self.crop, p.width), min(self.crop, p.height)
        col = int(rng.integers(0, p.width - w + 1))
        row = int(rng.integers(0, p.height - h + 1))
        return WindowRef(scene, Window(col, row, w, h))

    def train_sample(self, rng: np.random.Generator, *, augment: bool = True, tries: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """A random window with validation pixels ignored; redrawn while mostly unlabelled; augmented."""
        best = None
        for _ in range(tries):
            ref = self.random_window(rng)
            img, tgt = self.read(ref.scene, ref.window, size=self.crop)
            self._hide_val(ref, tgt)
            frac = float((tgt != IGNORE_INDEX).mean())
            if best is None or frac > best[0]:
                best = (frac, img, tgt)
            if frac >= self.min_valid:
                break
        _, img, tgt = best
        if augment:
            img, tgt = augment_pair(img, tgt, rng, jitter=self.jitter)
        return img, tgt

    def _hide_val(self, ref: WindowRef, tgt: np.ndarray) -> None:
        win = ref.window
        for cell in self._val_by_scene.get(ref.scene, ()):
            r0 = max(win.row_off, cell.row_off)
            r1 = min(win.row_off + win.height, cell.row_off + cell.height)
            c0 = max(win.col_off, cell.col_off)
            c1 = min(win.col_off + win.width, cell.col_off + cell.width)
            if r0 < r1 and c0 < c1:
                tgt[r0 - win.row_off : r1 - win.row_off, c0 - win.col_off : c1 - win.col_off] = IGNORE_INDEX

    def val_samples(self):
        """The fixed validation cells, in order (no augmentation)."""
        for ref in self.val_cells:
            yield self.read(ref.scene, ref.window)

    def close(self) -> None:
        for ds in self._src + self._msrc:
            ds.close()

    def __enter__(self) -> "WindowSampler":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def augment_pair(
    img: np.ndarray, tgt: np.ndarray, rng: np.random.Generator, *, jitter: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Random rot90 and horizontal flip (the 8 dihedral symmetries; labels move with the pixels).

    With ``jitter`` > 0, each band of the (normalised) image also gets a random gain in
    [1 - jitter, 1 + jitter] and offset in [-jitter, jitter] (standard deviations): a colour-balance
    augmentation.
    """
    k = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    if jitter > 0:
        gain = rng.uniform(1 - jitter, 1 + jitter, img.shape[0]).astype(np.float32)
        offset = rng.uniform(-jitter, jitter, img.shape[0]).astype(np.float32)
        img = img * gain[:, None, None] + offset[:, None, None]
    if k:
        img = np.rot90(img, k, axes=(1, 2))
        tgt = np.rot90(tgt, k, axes=(0, 1))
    if flip:
        img = img[:, :, ::-1]
        tgt = tgt[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(tgt)


def n_batches(samples: int, batch_size: int) -> int:
    return max(1, math.ceil(samples / batch_size))

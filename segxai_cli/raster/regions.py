"""What is explained in each window: the region sources besides the default predicted mask.

- :class:`MaskRegion` — a region/ground-truth mask raster on exactly the scene's pixel grid
  (``--region-mask``); pixels > 0 (and valid) are the region.
- :class:`GeometryRegion` — polygons (or any geometries) from a vector file (``--vector``: GeoJSON,
  GeoPackage, Shapefile, anything fiona reads), reprojected to the scene's CRS, or a bounding box in
  the scene's map coordinates (``--bbox``). Rasterised per window (pixel centres inside), only the
  geometries whose bounds touch the window are considered; windows that no geometry touches are not
  computed at all (``skip_outside``).

A region source is created once per scene and its :meth:`~RegionSource.open` returns a per-thread
reader (raster handles are never shared between threads).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio import features, windows
from rasterio.windows import Window

from segxai_cli.errors import InputError
from segxai_cli.raster.reader import open_raster_quiet, read_window


class RegionWarning(UserWarning):
    """A region source does not fit the scene well (no CRS, no geometry inside the scene)."""


class RegionSource:
    """Base class: ``window_mask(window) -> bool (h, w)``; ``skip_outside`` = skip empty windows."""

    kind = "predicted"
    skip_outside = False

    def describe(self) -> str:
        return self.kind

    def open(self) -> "RegionSource":  # per-thread reader; default: itself (stateless)
        return self

    def close(self) -> None:
        pass

    def touches(self, window: Window) -> bool:
        return True

    def window_mask(self, window: Window) -> np.ndarray:
        raise NotImplementedError


class MaskRegion(RegionSource):
    """A mask raster aligned with the scene: band 1 > 0 is the region."""

    kind = "mask"

    def __init__(self, path: str | Path, scene: rasterio.DatasetReader) -> None:
        self.path = Path(path)
        with open_raster_quiet(self.path) as m:
            if (m.width, m.height) != (scene.width, scene.height):
                raise InputError(
                    f"{self.path}: region mask is {m.width}x{m.height} px but the scene {Path(scene.name).name} is "
                    f"{scene.width}x{scene.height}; the mask must be on the scene's pixel grid"
                )
            if not m.transform.almost_equals(scene.transform, precision=1e-6 * max(abs(scene.transform.a), 1e-9)):
                raise InputError(
                    f"{self.path}: region mask transform differs from the scene's; resample it onto the "
                    f"scene grid first (e.g. gdalwarp -te/-tr, or rio warp --like)"
                )
            if m.crs is not None and scene.crs is not None and m.crs != scene.crs:
                raise InputError(f"{self.path}: region mask CRS {m.crs} differs from the scene's {scene.crs}")
        self._src = None

    def describe(self) -> str:
        return f"mask:{self.path.name}"

    def open(self) -> "MaskRegion":
        clone = object.__new__(MaskRegion)
        clone.__dict__.update(self.__dict__)
        clone._src = open_raster_quiet(self.path)
        return clone

    def close(self) -> None:
        if self._src is not None:
            self._src.close()
            self._src = None

    def window_mask(self, window: Window) -> np.ndarray:
        data, valid = read_window(self._src, window, [1])
        return (data[0] > 0) & valid


class GeometryRegion(RegionSource):
    """Geometries in the scene's CRS, rasterised per window."""

    kind = "vector"
    skip_outside = True

    def __init__(self, geometries: Sequence[dict], transform, label: str, all_touched: bool = False,
                 properties: Sequence[dict] | None = None) -> None:
        self.geometries = list(geometries)
        self.properties = list(properties) if properties is not None else [{} for _ in self.geometries]
        self.transform = transform
        self.label = label
        self.all_touched = all_touched
        self.bounds = np.array([_geom_bounds(g) for g in self.geometries], dtype=np.float64).reshape(-1, 4)

    def describe(self) -> str:
        return self.label

    def _hits(self, window: Window) -> np.ndarray:
        left, bottom, right, top = windows.bounds(window, self.transform)
        x0, x1 = min(left, right), max(left, right)
        y0, y1 = min(bottom, top), max(bottom, top)
        b = self.bounds
        return (b[:, 0] <= x1) & (b[:, 2] >= x0) & (b[:, 1] <= y1) & (b[:, 3] >= y0)

    def touches(self, window: Window) -> bool:
        return bool(self._hits(window).any()) if len(self.bounds) else False

    def window_mask(self, window: Window) -> np.ndarray:
        h, w = int(window.height), int(window.width)
        hits = np.nonzero(self._hits(window))[0] if len(self.bounds) else []
        if len(hits) == 0:
            return np.zeros((h, w), bool)
        out = features.rasterize(
            ((self.geometries[i], 1) for i in hits), out_shape=(h, w),
            transform=windows.transform(window, self.transform), fill=0, dtype="uint8",
            all_touched=self.all_touched,
        )
        return out > 0

    def any_in_scene(self, width: int, height: int) -> bool:
        return self.touches(Window(0, 0, width, height))

    def pixel_bounds(self, i: int) -> tuple[float, float, float, float]:
        """Geometry ``i``'s bounds in pixel coordinates of the scene: (col0, row0, col1, row1)."""
        x0, y0, x1, y1 = self.bounds[i]
        inv = ~self.transform
        cols, rows = zip(*(inv * (x, y) for x, y in ((x0, y0), (x1, y0), (x0, y1), (x1, y1))))
        return min(cols), min(rows), max(cols), max(rows)

    def only(self, i: int) -> "GeometryRegion":
        """The region of geometry ``i`` alone (per-feature explanations)."""
        return GeometryRegion([self.geometries[i]], self.transform, f"{self.label}#{i}", self.all_touched,
                              [self.properties[i]])


def _coords(geom: dict) -> Iterator[np.ndarray]:
    t = geom["type"]
    if t == "GeometryCollection":
        for g in geom["geometries"]:
            yield from _coords(g)
        return
    arr = np.asarray(_flatten(geom["coordinates"]), dtype=np.float64)
    if arr.size:
        yield arr.reshape(-1, arr.shape[-1])[:, :2]


def _flatten(c) -> list:
    if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
        return [c]
    out = []
    for item in c:
        out.extend(_flatten(item))
    return out


def _geom_bounds(geom: dict) -> tuple[float, float, float, float]:
    pts = [a for a in _coords(geom)]
    if not pts:
        return (np.inf, np.inf, -np.inf, -np.inf)  # empty geometry: touches nothing
    a = np.concatenate(pts)
    return (a[:, 0].min(), a[:, 1].min(), a[:, 0].max(), a[:, 1].max())


def load_vector(path: str | Path, scene: rasterio.DatasetReader, layer: str | None = None,
                all_touched: bool = False) -> GeometryRegion:
    """Read every geometry of a vector file (one layer) and reproject it to the scene's CRS."""
    import fiona
    from rasterio.warp import transform_geom

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such vector file")
    try:
        layers = fiona.listlayers(path)
    except Exception as exc:  # fiona raises DriverError and friends
        raise InputError(f"{path}: not a readable vector file ({_first_line(exc)})") from None
    if layer is None:
        if len(layers) > 1:
            raise InputError(f"{path}: has layers {', '.join(layers)}; choose one with --vector-layer")
        layer = layers[0] if layers else None
    elif layer not in layers:
        raise InputError(f"{path}: no layer {layer!r} (layers: {', '.join(layers)})")
    geoms, props = [], []
    try:
        with fiona.open(path, layer=layer) as src:
            vcrs = src.crs.to_wkt() if src.crs else None
            for i, feat in enumerate(src):
                g = feat.geometry
                if g is None:
                    continue
                geoms.append(_as_dict(g))
                props.append({"_index": i, "_id": feat.id, **dict(feat.properties or {})})
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot read features ({_first_line(exc)})") from None
    if vcrs and scene.crs is not None:
        try:
            geoms = [transform_geom(vcrs, scene.crs, g) for g in geoms]
        except Exception as exc:
            raise InputError(f"{path}: cannot reproject to the scene CRS ({_first_line(exc)})") from None
    elif vcrs is None or scene.crs is None:
        warnings.warn(
            f"{path}: {'the vector file' if vcrs is None else 'the scene'} has no CRS; "
            "assuming the geometries are in the scene's map coordinates",
            RegionWarning, stacklevel=2,
        )
    return GeometryRegion([_as_dict(g) for g in geoms], scene.transform, f"vector:{path.name}", all_touched, props)


def bbox_region(bbox: Sequence[float], scene: rasterio.DatasetReader, crs: str | None = None) -> GeometryRegion:
    """A box ``(minx, miny, maxx, maxy)`` in the scene's map coordinates, or in ``crs`` (like GDAL's
    ``-projwin_srs``): then its outline, densified, is reprojected, so a lon/lat box keeps its shape."""
    if len(bbox) != 4:
        raise InputError(f"--bbox needs 4 numbers minx,miny,maxx,maxy (got {len(bbox)})")
    x0, y0, x1, y1 = (float(v) for v in bbox)
    if not (x1 > x0 and y1 > y0):
        raise InputError(f"--bbox {x0!r},{y0!r},{x1!r},{y1!r}: need minx < maxx and miny < maxy")
    n = 16
    edge = [i / n for i in range(n)]
    ring = ([(x0 + t * (x1 - x0), y0) for t in edge] + [(x1, y0 + t * (y1 - y0)) for t in edge]
            + [(x1 - t * (x1 - x0), y1) for t in edge] + [(x0, y1 - t * (y1 - y0)) for t in edge] + [(x0, y0)])
    geom = {"type": "Polygon", "coordinates": [ring]}
    label = f"bbox:{x0!r},{y0!r},{x1!r},{y1!r}" + (f"@{crs}" if crs else "")
    if crs:
        from rasterio.crs import CRS
        from rasterio.errors import CRSError
        from rasterio.warp import transform_geom

        try:
            src_crs = CRS.from_user_input(crs)
        except CRSError as exc:
            raise InputError(f"--bbox-crs {crs!r}: not a CRS ({_first_line(exc)})") from None
        if scene.crs is None:
            raise InputError(f"{scene.name}: has no CRS, so a --bbox in {crs} cannot be placed on it")
        geom = transform_geom(src_crs, scene.crs, geom)
    return GeometryRegion([geom], scene.transform, label, all_touched=True)


def _as_dict(g) -> dict:
    if isinstance(g, dict):
        return g
    gi = getattr(g, "__geo_interface__", None)
    if gi is not None:
        return dict(gi)
    return dict(g)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

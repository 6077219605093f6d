"""Where a raster lives, held as a URI from the command line to the records.

A :class:`RasterSource` keeps the location exactly as the user gave it (``scene.tif``,
``/data/a.tif``, a GDAL ``/vsi…`` path) and knows how GDAL opens it, what the outputs of a scene
are called (``stem``) and whether it is a local file. ``Path("s3://b/k")`` would silently become
``s3:/b/k``; a location is therefore never turned into a ``Path`` unless it is local.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Union
from urllib.parse import urlsplit

SourceLike = Union[str, os.PathLike, "RasterSource"]


@dataclass(frozen=True, order=True)
class RasterSource:
    """One raster location (a URI); see the module docstring."""

    uri: str

    # GDAL drivers accepted for this kind of source (windowed reads must be cheap)
    drivers = frozenset({"GTiff", "COG"})

    @classmethod
    def of(cls, location: SourceLike) -> "RasterSource":
        if isinstance(location, RasterSource):
            return location
        return cls(os.fspath(location))

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri and not self.uri.startswith("/vsi")

    @property
    def path(self) -> Path:
        """The local path (only for local sources)."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not a local file")
        return Path(self.uri)

    @property
    def gdal_path(self) -> str:
        """What ``rasterio.open`` is given."""
        return self.uri

    @property
    def name(self) -> str:
        """The file name: the last component of the path, without a query string."""
        if self.is_local:
            return Path(self.uri).name
        return PurePosixPath(urlsplit(self.uri).path or self.uri).name

    @property
    def stem(self) -> str:
        """The name outputs of this scene are derived from (``<stem>_saliency.tif``)."""
        name = self.name
        for suffix in (".tiff", ".tif", ".vrt", ".jp2", ".json"):
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return PurePosixPath(name).stem

    def open(self):
        """A rasterio dataset (callers close it); :func:`segxai_cli.raster.reader.open_raster` checks it."""
        import rasterio

        return rasterio.open(self.gdal_path)

    def exists(self) -> bool:
        """False only when a local file is known to be missing (remote ones are tried on open)."""
        return not self.is_local or Path(self.uri).exists()

    def __str__(self) -> str:
        return self.uri


@dataclass(frozen=True, order=True)
class WindowSource(RasterSource):
    """A pixel window of another source, under a name of its own (per-feature explanations).

    Opened through GDAL's ``vrt://…?srcwin=`` connection string: a georeferenced sub-raster that
    reads straight from the original file.
    """

    base: RasterSource = None  # type: ignore[assignment]
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # col_off, row_off, width, height
    label: str = ""

    drivers = frozenset({"VRT"})

    @classmethod
    def of_window(cls, base: RasterSource, window: tuple[int, int, int, int], label: str) -> "WindowSource":
        c, r, w, h = (int(v) for v in window)
        return cls(f"vrt://{base.gdal_path}?srcwin={c},{r},{w},{h}", base, (c, r, w, h), label)

    @property
    def is_local(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return f"{self.label}.tif"

    @property
    def stem(self) -> str:
        return self.label

    def exists(self) -> bool:
        return self.base.exists()

    def __str__(self) -> str:
        c, r, w, h = self.window
        return f"{self.base}[{self.label}: cols {c}..{c + w}, rows {r}..{r + h}]"

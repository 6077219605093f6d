"""Where a raster lives, held as a URI from the command line to the records.

A :class:`RasterSource` keeps the location exactly as the user gave it (``scene.tif``,
``/data/a.tif``, ``https://…``, ``s3://…``, a GDAL ``/vsi…`` path, ``mosaic.vrt``, a STAC item) and
knows how GDAL opens it, what the outputs of a scene are called (``stem``) and whether it is a
local file. ``Path("s3://b/k")`` would silently become ``s3:/b/k``; a location is therefore never
turned into a ``Path`` unless it is local. ``str(source)`` is the location as it may be shown:
query-string secrets are hidden (:mod:`segxai_cli.cloud.redact`), the URI itself is kept for GDAL.

:meth:`RasterSource.of` is the one place where a user's string becomes a source: each kind
(``https://`` → ``/vsicurl/``, ``s3://`` → ``/vsis3/``, STAC ``.json`` documents, …) declares the
locations it ``claims``; everything else (local files, ``/vsi…`` paths, ``.vrt`` files, any GDAL
connection string) is opened by GDAL as given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Union
from urllib.parse import urlsplit

from segxai_cli.cloud.redact import redact_url

SourceLike = Union[str, os.PathLike, "RasterSource"]

# GDAL drivers whose windowed reads are cheap (tiled or random-access formats). Others — PNG, JPEG,
# GIF, BMP, WEBP, ASCII grids… — decode from the start of the file for every window: refused.
WINDOWED_DRIVERS = frozenset({
    "GTiff", "COG", "VRT", "JP2OpenJPEG", "JP2KAK", "JP2ECW", "JP2MrSID", "HFA", "ENVI", "EHdr", "KEA",
    "MRF", "Zarr", "netCDF", "HDF5", "HDF5Image", "GPKG", "PCIDSK",
})
SCENE_SUFFIXES = (".tiff", ".tif", ".vrt", ".jp2", ".json", ".img", ".nc", ".zarr")


@dataclass(frozen=True, order=True)
class RasterSource:
    """One raster location (a URI); see the module docstring."""

    uri: str

    drivers: ClassVar[frozenset[str]] = WINDOWED_DRIVERS
    _kinds: ClassVar[list[type["RasterSource"]]] = []

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "claims" in cls.__dict__:
            RasterSource._kinds.append(cls)

    @classmethod
    def claims(cls, uri: str) -> bool:
        """Whether a user's location is of this kind (kinds that define it take part in :meth:`of`)."""
        return False

    @classmethod
    def of(cls, location: SourceLike) -> "RasterSource":
        """The source of a user's location: the first kind that claims it, else GDAL's own path."""
        if isinstance(location, RasterSource):
            return location
        uri = os.fspath(location)
        if not isinstance(location, os.PathLike):
            for kind in RasterSource._kinds:
                if kind.claims(uri):
                    return kind(uri)
        return RasterSource(uri)

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri and not self.uri.startswith(("/vsi", "<"))

    @property
    def path(self) -> Path:
        """The local path (only for local sources)."""
        if not self.is_local:
            raise ValueError(f"{self} is not a local file")
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
        for suffix in SCENE_SUFFIXES:
            if name.lower().endswith(suffix):
                return name[: -len(suffix)]
        return PurePosixPath(name).stem

    @property
    def href(self) -> str:
        """The location for a STAC link or a record: absolute for local files, secrets hidden."""
        return str(self.path.resolve()) if self.is_local else str(self)

    def remote_prefixes(self) -> list[str]:
        """GDAL path prefixes this source reads over the network (empty for local files)."""
        return [] if self.is_local else [self.gdal_path]

    def open(self):
        """A rasterio dataset (callers close it); :func:`segxai_cli.raster.reader.open_raster` checks it."""
        import rasterio

        return rasterio.open(self.gdal_path)

    def exists(self) -> bool:
        """False only when a local file is known to be missing (remote ones are tried on open)."""
        return not self.is_local or Path(self.uri).exists()

    def __str__(self) -> str:
        return redact_url(self.uri)

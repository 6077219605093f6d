"""Where a raster lives, held as a URI: the public face of :mod:`segxai_cli.raster.sources`.

Importing this module registers every kind of source with :meth:`RasterSource.of` (one module per
kind in ``raster/sources/``: local and GDAL paths, ``https://``, ``s3://``, STAC items, windows).
"""

from __future__ import annotations

from segxai_cli.raster.sources.base import WINDOWED_DRIVERS, RasterSource, SourceLike

# The first kind that claims a location wins, in import order: STAC documents before the
# transports (an https:// item.json is a STAC item, not a raster).
from segxai_cli.raster.sources.stac import StacItemSource  # noqa: I001
from segxai_cli.raster.sources.remote import HttpSource, S3Source, VsiSource, read_options
from segxai_cli.raster.sources.window import WindowSource

__all__ = ["WINDOWED_DRIVERS", "HttpSource", "RasterSource", "S3Source", "SourceLike", "StacItemSource",
           "VsiSource", "WindowSource", "read_options"]

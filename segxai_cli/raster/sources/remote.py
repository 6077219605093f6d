"""Rasters read over the network: ``https://`` through GDAL's ``/vsicurl/``, ``s3://`` through ``/vsis3/``.

Credentials are GDAL's own: for S3 the usual AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``/``~/.aws``, ``AWS_REGION``,
``AWS_S3_ENDPOINT``, ``AWS_NO_SIGN_REQUEST``…); segxai never reads, logs or records them. How a
scene's reads are tuned is :func:`read_options`.
"""

from __future__ import annotations

import os
import re

from segxai_cli.raster.sources.base import RasterSource

_VSI = re.compile(r"^/vsi(curl|s3|gs|az|adls|oss|swift|webhdfs)(_streaming)?/", re.I)


class HttpSource(RasterSource):
    """``http(s)://host/path/scene.tif`` (a COG, a GeoTIFF, a ``.vrt``, a JP2), read by HTTP range requests."""

    @classmethod
    def claims(cls, uri: str) -> bool:
        return uri.lower().startswith(("https://", "http://"))

    @property
    def gdal_path(self) -> str:
        return f"/vsicurl/{self.uri}"


class S3Source(RasterSource):
    """``s3://bucket/key``, read through GDAL's ``/vsis3/`` with the AWS credentials of the environment."""

    @classmethod
    def claims(cls, uri: str) -> bool:
        return uri.lower().startswith("s3://")

    @property
    def gdal_path(self) -> str:
        return f"/vsis3/{self.uri[len('s3://'):]}"


class VsiSource(RasterSource):
    """A GDAL network path given as such (``/vsicurl/https://…``, ``/vsis3/bucket/key``, ``/vsigs/…``)."""

    @classmethod
    def claims(cls, uri: str) -> bool:
        return bool(_VSI.match(uri))


def read_options(remote: bool, window_bytes: int, block_cache: bool = True) -> dict[str, object]:
    """GDAL configuration for reading one scene (``window_bytes``: one window of the selected bands).

    GDAL's block cache (global) is capped so that memory does not grow with the scene, but holds
    several windows so the overlap of the next windows is read from memory; ``block_cache=False``
    leaves it out (the reader thread: the scene already set it). For network sources also: no
    directory listing on open, consecutive ranges merged and fetched in parallel, a range cache of a
    few windows, GDAL's own retries on 429/5xx, and stall detection (a transfer slower than 1 byte/s
    for 30 s fails, and is retried by :mod:`segxai_cli.cloud.retry`). Any of these set in the
    environment keeps the environment's value.
    """
    mb = 1024 * 1024
    opts: dict[str, object] = {}
    if block_cache:
        opts["GDAL_CACHEMAX"] = int(min(1024 * mb, max(128 * mb, 8 * window_bytes)))
    if remote:
        opts.update(
            GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
            GDAL_HTTP_MERGE_CONSECUTIVE_RANGES="YES",
            GDAL_HTTP_MULTIRANGE="PARALLEL",
            CPL_VSIL_CURL_CACHE_SIZE=int(min(256 * mb, max(64 * mb, 8 * window_bytes))),
            GDAL_HTTP_MAX_RETRY=3,
            GDAL_HTTP_RETRY_DELAY=0.5,
            GDAL_HTTP_RETRY_CODES="429,500,502,503,504",
            GDAL_HTTP_CONNECTTIMEOUT=15,
            GDAL_HTTP_LOW_SPEED_TIME=30,
            GDAL_HTTP_LOW_SPEED_LIMIT=1,
        )
    return {k: v for k, v in opts.items() if k not in os.environ}  # the user's environment wins

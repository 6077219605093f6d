"""Opening a GDAL path with retries, and GDAL's errors as one line in the user's terms.

A transient failure (HTTP 5xx or 429, a timeout) is retried with backoff (:mod:`segxai_cli.cloud.retry`,
on top of GDAL's own ``GDAL_HTTP_MAX_RETRY``). GDAL remembers a failed request for the life of the
process, so a retry asks GDAL not to use its cache for the network paths involved
(``CPL_VSIL_CURL_NON_CACHED``). HTTP 403/404 fail at once with the URL, its secrets hidden.
"""

from __future__ import annotations

from collections.abc import Sequence
import rasterio
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioIOError

from segxai_cli.cloud.redact import redact
from segxai_cli.cloud.retry import http_status, is_transient, with_retries
from segxai_cli.errors import InputError

GDAL_ERRORS = (RasterioIOError, CPLE_BaseError)


class TransientReadError(InputError):
    """A network read failed after every retry (the server or the connection, not the file)."""


def gdal_open(gdal_path: str, shown: str, prefixes: Sequence[str] = ()) -> rasterio.DatasetReader:
    """``rasterio.open(gdal_path)`` with retries on transient failures; errors name ``shown``."""

    def attempt(n: int):
        if n and prefixes:  # bypass GDAL's memory of the failed request
            with rasterio.Env(CPL_VSIL_CURL_NON_CACHED=":".join(prefixes)):
                return rasterio.open(gdal_path)
        return rasterio.open(gdal_path)

    try:
        return with_retries(attempt, shown, GDAL_ERRORS)
    except GDAL_ERRORS as exc:
        raise gdal_error(shown, exc, "cannot open") from None


def gdal_error(shown: str, exc: BaseException, action: str = "read failed") -> InputError:
    """One line for a GDAL failure: HTTP status and URL for network errors, secrets hidden."""
    status = http_status(exc)
    reason = redact(first_line(exc))
    if status in (401, 403):
        return InputError(f"{shown}: access denied (HTTP {status}); check the credentials or the URL's signature")
    if status == 404 or (status is None and "No such file" in reason and "://" in shown):
        return InputError(f"{shown}: not found (HTTP 404)")
    if status is not None or is_transient(exc):
        return TransientReadError(f"{shown}: {action} after retries ({reason})")
    return InputError(f"{shown}: {action} ({reason})")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Small documents (STAC JSON, records) read from a local path, ``http(s)://`` or ``s3://``, with retries."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from segxai_cli.cloud.redact import redact, redact_url
from segxai_cli.cloud.retry import http_status, with_retries
from segxai_cli.errors import InputError

TIMEOUT_S = 60


def read_bytes(uri: str) -> bytes:
    """The content at ``uri``; one-line :class:`InputError` naming it (secrets hidden) on failure."""
    shown = redact_url(uri)
    low = uri.lower()
    try:
        if low.startswith(("http://", "https://")):
            return with_retries(lambda _: _http_get(uri), shown, (urllib.error.URLError, OSError))
        if low.startswith("s3://"):
            from segxai_cli.cloud import s3

            return s3.get_bytes(uri)
        return Path(uri).read_bytes()
    except InputError:
        raise
    except (urllib.error.URLError, OSError) as exc:
        status = http_status(exc)
        if status in (401, 403):
            raise InputError(f"{shown}: access denied (HTTP {status})") from None
        if status == 404 or isinstance(exc, FileNotFoundError):
            raise InputError(f"{shown}: not found" + (" (HTTP 404)" if status else "")) from None
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        raise InputError(f"{shown}: cannot read ({redact(str(reason))})") from None


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def _http_get(url: str) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "segxai"})
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 (http(s) only)
        return resp.read()

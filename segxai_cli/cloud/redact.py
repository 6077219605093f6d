"""Locations as they may be shown: never a query-string secret or a password.

A signed URL (``?X-Amz-Signature=…``, ``?sig=…``, a SAS token) is a credential: every message,
record, CSV, manifest and STAC link shows it with the values of its query string replaced by
``***`` and any ``user:password@`` removed. The location itself is kept intact for GDAL.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "***"
# a URL anywhere in a text (GDAL error messages repeat them)
_URL = re.compile(r"(?:/vsi[a-z0-9_]+/)?(?:https?|s3|gs|az|abfss?)://[^\s'\"<>]+", re.I)


def redact_url(url: str) -> str:
    """``url`` with query values and credentials hidden (other text unchanged)."""
    prefix = ""
    m = re.match(r"/vsi[a-z0-9_]+/", url)
    if m and "://" in url:
        prefix, url = m.group(0), url[m.end():]
    if "://" not in url:
        return prefix + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return prefix + url.split("?", 1)[0] + ("?" + HIDDEN if "?" in url else "")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if "@" in parts.netloc:
        netloc = f"{HIDDEN}@{netloc}"
    query = "&".join(_hide(p) for p in parts.query.split("&")) if parts.query else ""
    return prefix + urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _hide(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}={HIDDEN}" if eq else key


def redact(text: str) -> str:
    """Every URL inside ``text`` redacted (for error messages that quote GDAL or boto3)."""
    return _URL.sub(lambda m: redact_url(m.group(0)), str(text))


class RedactingFilter:
    """A logging filter that redacts every URL of a record (GDAL's messages, relayed by rasterio's
    logger, quote the URLs they fetch, signatures included)."""

    def filter(self, record) -> bool:
        msg = record.getMessage()
        if "://" in msg:
            record.msg, record.args = redact(msg), ()
        return True

"""Retries with exponential backoff for transient remote failures (HTTP 5xx and 429, timeouts).

``SEGXAI_RETRIES`` (default 4) attempts after the first, waiting ``SEGXAI_RETRY_DELAY`` seconds
(default 0.5) times 2, 4, 8 … (with jitter, at most 30 s). Permanent failures (403, 404, a corrupt
file) are not retried.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Optional, TypeVar

from segxai_cli.cloud.redact import redact

log = logging.getLogger("segxai")
T = TypeVar("T")

_STATUS = re.compile(r"(?:HTTP (?:response|error) code:?\s*|HTTP\s+|status(?: code)?[:= ]\s*|\()([1-5]\d\d)\b", re.I)
_TRANSIENT_TEXT = re.compile(
    r"timed? ?out|timeout|connection (?:reset|refused|aborted)|couldn't connect|failed to connect|"
    r"empty reply|recv failure|send failure|transfer closed|temporarily unavailable|SlowDown|"
    r"InternalError|ServiceUnavailable|RequestTimeout", re.I)
TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status a GDAL/urllib/boto3 error reports, if any."""
    code = getattr(exc, "code", None) or getattr(exc, "status", None)
    if isinstance(code, int) and 100 <= code < 600:
        return code
    resp = getattr(exc, "response", None)
    if isinstance(resp, dict):
        code = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    m = _STATUS.search(str(exc))
    return int(m.group(1)) if m else None


def is_transient(exc: BaseException) -> bool:
    status = http_status(exc)
    if status is not None:
        return status in TRANSIENT_STATUS
    return isinstance(exc, (TimeoutError, ConnectionError)) or bool(_TRANSIENT_TEXT.search(str(exc)))


def delays() -> Iterator[float]:
    """The waits before each retry (see the module docstring)."""
    n = int(os.environ.get("SEGXAI_RETRIES", "4"))
    base = float(os.environ.get("SEGXAI_RETRY_DELAY", "0.5"))
    for i in range(max(0, n)):
        yield min(30.0, base * (2 ** i)) * (0.75 + random.random() / 2)


def with_retries(fn: Callable[[int], T], what: str, errors: tuple[type[BaseException], ...] = (Exception,)) -> T:
    """``fn(attempt)`` (attempt 0, 1, …), retried after a transient failure; the last error is raised."""
    waits = delays()
    attempt = 0
    while True:
        try:
            return fn(attempt)
        except errors as exc:
            if not is_transient(exc):
                raise
            wait = next(waits, None)
            if wait is None:
                raise
            attempt += 1
            log.warning("%s: %s; retry %d in %.1f s", redact(what), redact(_first_line(exc)), attempt, wait)
            time.sleep(wait)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""What the CLI prints: logs and warnings on stderr, progress for people and for log files.

- Logs go to stderr (results and ``--json`` to stdout): WARNING by default, ``-v`` INFO, ``-vv`` DEBUG,
  ``-q`` errors only. Python warnings (no CRS, region outside the scene…) become one log line each.
- Progress: a bar when stderr is a terminal; otherwise (cron, Slurm, nohup) one parseable line per
  item and at most every ``LOG_EVERY`` seconds within one, e.g.
  ``progress: scene 3/40 scene_03.tif 45% 1.2 MP/s eta 02:10``. ``-q`` silences both.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Callable, Optional

import typer

log = logging.getLogger("segxai")

LOG_EVERY = 30.0  # seconds between progress lines within one item, when not on a terminal


def setup_logging(verbose: int = 0, quiet: bool = False) -> None:
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    from segxai_cli.cloud.redact import RedactingFilter

    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())  # no URL secret in any log line (GDAL's included)

    def show(message, category, filename, lineno, file=None, line=None):
        log.warning("%s", message)

    warnings.showwarning = show


def error(message: str) -> None:
    """One line on stderr, prefixed like every segxai error."""
    typer.echo(f"error: {message}", err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Progress of items (scenes) made of units (windows, tiles): a bar on a terminal, lines elsewhere.

    Call it as ``progress(index, count, name, total_units, megapixels)`` when an item starts; it
    returns ``advance(n_units)``.
    """

    def __init__(self, what: str, quiet: bool = False, unit: str = "tile", terminal: Optional[bool] = None) -> None:
        self.what, self.unit, self.quiet = what, unit, quiet
        self.terminal = is_terminal() if terminal is None else terminal
        self._bar = None

    def __call__(self, index: int, count: int, name: str, total: int, megapixels: float = 0.0) -> Callable[[int], None]:
        self.close()
        if self.quiet:
            return lambda n: None
        if self.terminal:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=self.unit, desc=f"{index}/{count} {name}",
                             leave=False, dynamic_ncols=True, file=sys.stderr)
            return self._bar.update
        return _LineProgress(self.what, index, count, name, total, megapixels).advance

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class _LineProgress:
    def __init__(self, what: str, index: int, n_items: int, name: str, total: int, megapixels: float) -> None:
        self.head = f"progress: {what} {index}/{n_items} {name}"
        self.total, self.megapixels = max(total, 1), megapixels
        self.done = 0
        self.t0 = self.last = time.monotonic()
        typer.echo(f"{self.head} 0%", err=True)

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        finished = self.done >= self.total
        if not finished and now - self.last < LOG_EVERY:
            return
        self.last = now
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self.t0
        rate = f" {self.megapixels * frac / elapsed:.2f} MP/s" if self.megapixels and elapsed > 0 else ""
        eta = f" eta {_clock(elapsed / frac * (1 - frac))}" if 0 < frac < 1 else f" in {_clock(elapsed)}"
        typer.echo(f"{self.head} {frac:.0%}{rate}{eta}", err=True)

"""Named fault points, so the fault suite can break a real run at an exact moment.

Production code calls :func:`fault_point` at the moments that matter for crash safety (reading a
window, computing a batch, writing a strip, converting to COG, committing files, writing the record).
It costs one dictionary lookup. The fault tests set ``SEGXAI_FAULT=<point>:<action>`` (several
separated by commas) in a *subprocess* and check that the run leaves no temp file, no file under a
final name for the broken scene, and resumes to the same outputs. Actions:

- ``enospc`` / ``eio``: raise ``OSError`` (no space left on device / input/output error);
- ``sigint`` / ``sigterm`` / ``sighup`` / ``sigkill``: send that signal to the process itself.

A point fires once per process (the first time it is reached), unless written ``<point>@N``
(fires the N-th time). With ``SEGXAI_FAULT_ONCE=<file>`` it fires only in the first process that
creates that file: once across all the workers of a run (a worker killed once, its retry not).
"""

from __future__ import annotations

import errno
import os
import signal

_ENV = "SEGXAI_FAULT"
_ONCE = "SEGXAI_FAULT_ONCE"
_seen: dict[str, int] = {}


def _plan() -> dict[str, tuple[int, str]]:
    spec = os.environ.get(_ENV, "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, action = item.partition(":")
        name, _, nth = point.partition("@")
        out[name] = (int(nth or 1), action)
    return out


def reset() -> None:
    """Forget which points fired (in-process tests run several commands in one process)."""
    _seen.clear()


def fault_point(name: str) -> None:
    """Fire the fault planned for ``name`` (if any); a no-op in normal runs."""
    if _ENV not in os.environ:
        return
    plan = _plan().get(name)
    if plan is None:
        return
    _seen[name] = _seen.get(name, 0) + 1
    nth, action = plan
    if _seen[name] != nth or not _first_anywhere():
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, "No space left on device (injected at " + name + ")")
    if action == "eio":
        raise OSError(errno.EIO, "Input/output error (injected at " + name + ")")
    if action.startswith("sig"):
        os.kill(os.getpid(), getattr(signal, action.upper()))
        return
    raise ValueError(f"{_ENV}: unknown action {action!r}")


def _first_anywhere() -> bool:
    """True unless ``SEGXAI_FAULT_ONCE`` names a file that another process already created."""
    marker = os.environ.get(_ONCE)
    if not marker:
        return True
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True

"""Files that appear complete or not at all.

Every file segxai writes (rasters, styles, records, CSVs, checkpoints, logs) is first written under a
hidden temporary name *in the destination folder* — ``.<name>.segxai-tmp.<host>.<pid>.<kind>`` — and
renamed onto its final name only once it is complete (``os.replace`` is atomic within a folder). A run
killed at any moment therefore never leaves a half-written file under a final name; its temp files
are recognised by name (host and pid) and removed by :func:`remove_stale_temps` on the next run.

Write errors (a full disk, a read-only folder) become one :class:`~segxai_cli.errors.OutputError`
naming the file and the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from segxai_cli.errors import OutputError

TEMP_TAG = ".segxai-tmp"
STALE_SIDECARS = (".aux.xml", ".msk", ".ovr")


def _host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def temp_name(final: str | Path, kind: str = "part") -> Path:
    """Hidden temp path beside ``final``: ``.<name>.segxai-tmp.<host>.<pid>.<kind>``."""
    final = Path(final)
    return final.parent / f".{final.name}{TEMP_TAG}.{_host()}.{os.getpid()}.{kind}"


def is_temp_name(name: str) -> bool:
    return name.startswith(".") and TEMP_TAG in name


def remove_stale_temps(final: str | Path) -> list[Path]:
    """Delete temp files of ``final`` left by killed runs (same host, process no longer alive)."""
    final = Path(final)
    removed: list[Path] = []
    prefix = f".{final.name}{TEMP_TAG}."
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return removed
    host = _host()
    for p in entries:
        if not p.name.startswith(prefix):
            continue
        parts = p.name[len(prefix):].split(".")
        if len(parts) < 2 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and _alive(pid):
            continue  # another run on this machine is writing it right now
        with contextlib.suppress(OSError):
            p.unlink()
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_sidecars(final: str | Path) -> None:
    """GDAL sidecars of an older file under the same name (statistics, masks, overviews)."""
    for suffix in STALE_SIDECARS:
        Path(str(final) + suffix).unlink(missing_ok=True)


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: str | Path, exc: BaseException) -> OutputError:
    """One-line error for a failed write, in the user's terms ("no space left on device")."""
    reason = getattr(exc, "strerror", None) or _first_line(exc)
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        reason = "no space left on device"
    elif "No space left" in str(exc):
        reason = "no space left on device"
    return OutputError(f"{path}: cannot write ({reason})")


def publish(tmp: str | Path, final: str | Path, *, fsync: bool = True) -> Path:
    """Give ``tmp`` the usual permissions, flush it to disk and rename it onto ``final``."""
    tmp, final = Path(tmp), Path(final)
    try:
        os.chmod(tmp, 0o666 & ~umask())
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(final, exc) from None
    return final


@contextlib.contextmanager
def atomic_path(final: str | Path, kind: str = "part") -> Iterator[Path]:
    """Yield a temp path beside ``final``; on success it is published under ``final``, on any
    exception (including KeyboardInterrupt) it is deleted and ``final`` is untouched."""
    final = Path(final)
    folder = final.parent
    if not folder.is_dir():
        raise OutputError(f"{final}: folder {folder} does not exist")
    tmp = temp_name(final, kind)
    try:
        yield tmp
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise write_error(final, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    publish(tmp, final)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path, "part") as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a text file (UTF-8, newlines as given) under a temp name and rename it into place."""
    return atomic_write_bytes(path, text.encode("utf-8"))


class Staged:
    """A file written now under a temp name and published later with the rest of its scene."""

    def __init__(self, final: str | Path, data: bytes) -> None:
        self.final = Path(final)
        self.tmp = temp_name(self.final, "staged")
        try:
            with open(self.tmp, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise write_error(self.final, exc) from None

    @classmethod
    def text(cls, final: str | Path, text: str) -> "Staged":
        return cls(final, text.encode("utf-8"))

    def commit(self) -> Path:
        return publish(self.tmp, self.final)

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)


def check_writable_folder(folder: str | Path, *, create: bool = False) -> Path:
    """The folder exists (or is created) and files can be created in it; else one OutputError."""
    folder = Path(folder)
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{folder}: cannot create output folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OutputError(f"{folder}: {'is not a folder' if folder.exists() else 'folder does not exist'}")
    probe = temp_name(folder / "write-test", "probe")
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"{folder}: output folder is not writable ({exc.strerror or exc})") from None
    return folder


def check_output_file(path: str | Path, *, overwrite: bool, what: str = "output") -> Path:
    """Refuse before any work: a folder given as a file, an existing file without ``overwrite``,
    a missing or unwritable folder."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a directory; give the {what} file name")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: already exists (use --overwrite to replace it)")
    check_writable_folder(path.parent if str(path.parent) else Path("."))
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{path}: exists and is not writable")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

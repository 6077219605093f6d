"""Where a run's files end up: a local folder, or ``s3://bucket/prefix``.

Files are always made locally, under temp names, checked, then renamed (:mod:`segxai_cli.files`). For
a local output folder that is the end. For ``s3://`` they are made in a local staging folder
(``SEGXAI_STAGING``, default the system temp folder) and then uploaded — each object appears whole or
not at all (:mod:`segxai_cli.cloud.s3`), the scene record last, so the record object is the
completion marker in the bucket as on disk and ``--skip-existing`` works the same there. Local
copies are removed once uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Optional, Union

from segxai_cli.files import check_writable_folder

CONTENT_TYPES = {".tif": "image/tiff; application=geotiff; profile=cloud-optimized", ".json": "application/json",
                 ".qml": "application/xml", ".xml": "application/xml", ".csv": "text/csv"}


class Destination:
    """A local output folder (files are made in place)."""

    def __init__(self, folder: Union[str, Path]) -> None:
        self.folder = Path(folder)
        self.uri = str(folder)

    @staticmethod
    def of(output: Union[str, Path, "Destination"]) -> "Destination":
        if isinstance(output, Destination):
            return output
        if isinstance(output, str) and output.lower().startswith("s3://"):
            return S3Destination(output)
        return Destination(output)

    @property
    def remote(self) -> bool:
        return False

    def prepare(self) -> "Destination":
        """Create and check the folder (before any work)."""
        self.folder = check_writable_folder(self.folder, create=True)
        return self

    def location(self, path: Path) -> str:
        """Where a file made at ``path`` ends up."""
        return str(path)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def read_record(self, path: Path) -> Optional[dict]:
        from segxai_cli.explain.records import read_record

        return read_record(path)

    def complete(self, files: Sequence[Path], record: Path) -> Optional[dict]:
        """The record if a scene's outputs are complete (record present and every file there)."""
        rec = self.read_record(record)
        return rec if rec is not None and all(self.exists(p) for p in files) else None

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def publish(self, files: Sequence[Path]) -> list[str]:
        """Make finished files (in order; the record last) available at their final location."""
        return [self.location(p) for p in files]

    def pull_records(self, suffix: str) -> None:
        """Bring every scene record of the destination into :attr:`folder` (for the run summary)."""

    def cleanup(self) -> None:
        """Remove what only the run needed (nothing for a local folder)."""


class S3Destination(Destination):
    """``s3://bucket/prefix``: files made in a local staging folder, then uploaded (module docstring)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/")
        root = Path(os.environ.get("SEGXAI_STAGING") or tempfile.gettempdir())
        tag = self.uri[len("s3://"):].replace("/", "_")
        super().__init__(root / f"segxai-staging-{os.getpid()}-{tag}" / (self.uri.rsplit("/", 1)[-1] or "out"))
        self.uri = uri.rstrip("/")

    @property
    def remote(self) -> bool:
        return True

    def prepare(self) -> "S3Destination":
        from segxai_cli.cloud import s3

        s3.split(self.uri)
        self.folder.mkdir(parents=True, exist_ok=True)
        check_writable_folder(self.folder)
        s3.list_keys(self.uri + "/")  # credentials and bucket checked before any work
        return self

    def location(self, path: Path) -> str:
        return f"{self.uri}/{path.name}"

    def exists(self, path: Path) -> bool:
        from segxai_cli.cloud import s3

        return s3.exists(self.location(path))

    def read_record(self, path: Path) -> Optional[dict]:
        from segxai_cli.cloud import s3

        if not s3.exists(self.location(path)):
            return None
        try:
            rec = json.loads(s3.get_bytes(self.location(path)))
        except ValueError:
            return None
        return rec if isinstance(rec, dict) and rec.get("format") == "segxai-scene" else None

    def remove(self, path: Path) -> None:
        from segxai_cli.cloud import s3

        path.unlink(missing_ok=True)
        if s3.exists(self.location(path)):
            s3.delete(self.location(path))

    def publish(self, files: Sequence[Path]) -> list[str]:
        from segxai_cli.cloud import s3

        for p in files:
            s3.upload(p, self.location(p), CONTENT_TYPES.get(p.suffix.lower()))
        for p in files:
            p.unlink(missing_ok=True)
        return [self.location(p) for p in files]

    def pull_records(self, suffix: str) -> None:
        from segxai_cli.cloud import s3

        for p in self.folder.glob(f"*{suffix}"):
            p.unlink()
        for uri in s3.list_keys(self.uri + "/"):
            name = uri.rsplit("/", 1)[-1]
            if name.endswith(suffix):
                (self.folder / name).write_bytes(s3.get_bytes(uri))

    def cleanup(self) -> None:
        """Remove the staging folder (everything in it is uploaded or pulled again next time)."""
        shutil.rmtree(self.folder.parent, ignore_errors=True)

"""What every run output kind implements."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Optional


class RunOutput:
    """One file built from the records of every complete scene in the output folder."""

    name: ClassVar[str] = "run_output"
    file_name: ClassVar[str] = ""  # the file it writes into the output folder

    def write(self, outdir: Path, records: Sequence[dict]) -> Optional[Path]:
        """Write (atomically) and return the file, or None when there is nothing to write."""
        return None

"""The HTML report of an output folder: ``segxai report OUTDIR`` and ``--report`` on explain,
evaluate and threshold-sweep.

::

    from segxai_cli.report import build_report
    build_report("out/")            # -> out/report.html

Two steps: :mod:`~segxai_cli.report.gather` reads what segxai wrote into the folder (scene records,
manifest, quicklooks, QGIS project, evaluate / threshold-sweep CSVs and JSON);
:mod:`~segxai_cli.report.html` renders one self-contained page (figures of the study drawn by
:mod:`~segxai_cli.report.figures`). Like the manifest, the report is rebuilt from the folder each
time, so it is replaced without ``--overwrite``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, Union

REPORT_NAME = "report.html"


def build_report(folder: Union[str, Path], output: Optional[Union[str, Path]] = None) -> Path:
    """Write the report of ``folder`` to ``output`` (default ``folder/report.html``) atomically."""
    from segxai_cli._version import __version__
    from segxai_cli.files import atomic_write_text
    from segxai_cli.report.gather import gather
    from segxai_cli.report.html import render

    folder = Path(folder)
    out = Path(output) if output is not None else folder / REPORT_NAME
    data = gather(folder)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return atomic_write_text(out, render(data, out.parent, generated, __version__))


__all__ = ["REPORT_NAME", "build_report"]

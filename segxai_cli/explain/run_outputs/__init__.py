"""Files a run produces from all its scenes, rebuilt after the scenes like the manifest.

A run output kind (:class:`RunOutput`) reads the scene records of the output folder — every complete
scene, from this run, earlier runs and other shards — and writes one file. Adding one = one file in
this package and one line in :data:`RUN_OUTPUTS`; :func:`write_run_outputs` is called by
:func:`segxai_cli.explain.records.write_run_summary`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from segxai_cli.explain.run_outputs.base import RunOutput
from segxai_cli.explain.run_outputs.qgis_project import QgisProject
from segxai_cli.explain.run_outputs.stac_catalog import StacCatalog

log = logging.getLogger("segxai")

RUN_OUTPUTS: tuple[type[RunOutput], ...] = (
    QgisProject,
    StacCatalog,
)


def write_run_outputs(outdir: Path, records: Sequence[dict]) -> dict[str, Path]:
    """Write every run output kind for ``records`` (complete scenes); returns name → path of those written."""
    written = {}
    for kind in RUN_OUTPUTS:
        path = kind().write(outdir, records)
        if path is not None:
            written[kind.name] = path
            log.info("%s: %s", kind.name, path)
    return written


__all__ = ["RUN_OUTPUTS", "QgisProject", "RunOutput", "StacCatalog", "write_run_outputs"]

"""``catalog.json``: the run's STAC Catalog, one ``item`` link per complete scene's STAC Item.

Rebuilt with the manifest from every scene record of the output folder (all shards and runs), with
relative links, so the folder (or bucket prefix) can be moved, served or crawled as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pathlib import Path
from typing import Optional

from segxai_cli._version import __version__
from segxai_cli.explain.run_outputs.base import RunOutput
from segxai_cli.files import atomic_write_text

STAC_VERSION = "1.1.0"
CATALOG_NAME = "catalog.json"


def catalog_json(catalog_id: str, records: Sequence[dict]) -> str:
    links = [{"rel": "root", "href": "./catalog.json", "type": "application/json", "title": catalog_id}]
    for rec in records:
        item = (rec.get("outputs") or {}).get("stac_item")
        if item:
            links.append({"rel": "item", "href": f"./{item}", "type": "application/geo+json", "title": rec.get("scene")})
    cat = {"type": "Catalog", "stac_version": STAC_VERSION, "id": catalog_id or "segxai",
           "title": "segxai explanations",
           "description": f"Saliency maps and predictions written by segxai {__version__}, one STAC Item per scene.",
           "links": links}
    return json.dumps(cat, indent=2) + "\n"


class StacCatalog(RunOutput):
    name = "stac_catalog"
    file_name = CATALOG_NAME

    def write(self, outdir: Path, records: Sequence[dict]) -> Optional[Path]:
        return atomic_write_text(outdir / CATALOG_NAME, catalog_json(outdir.resolve().name, records))

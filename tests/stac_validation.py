"""pystac's JSON-schema validation, offline: the extension schemas come from tests/data/stac-schemas
(pystac ships the core and GeoJSON schemas); any other schema URI fails the test instead of reaching
for the network."""

from __future__ import annotations

import json
from pathlib import Path

import pystac
from pystac.validation import JsonSchemaSTACValidator, set_validator

SCHEMAS = Path(__file__).parent / "data" / "stac-schemas"
LOCAL = {
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json": SCHEMAS / "raster-v1.1.0.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json": SCHEMAS / "projection-v2.0.0.json",
}


class OfflineValidator(JsonSchemaSTACValidator):
    def _get_schema(self, schema_uri: str) -> dict:
        uri = schema_uri.rstrip("#")
        if uri not in self.schema_cache:
            if uri not in LOCAL:
                raise AssertionError(f"schema {schema_uri} is not shipped with the tests")
            s = json.loads(LOCAL[uri].read_text())
            self.schema_cache[uri] = s
            self.schema_cache[schema_uri] = s
        return self.schema_cache[uri]


def validate_file(path: Path) -> list[str]:
    """Validate a STAC Item or Catalog file for real (core + every extension it declares)."""
    set_validator(OfflineValidator())
    d = json.loads(Path(path).read_text())
    return pystac.validation.validate_dict(d, href=str(path))

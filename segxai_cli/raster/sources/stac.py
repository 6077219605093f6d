"""A STAC Item as a raster source: its assets (one band each, or more) stacked into one VRT.

Read with ``pystac`` (the ``stac`` extra) from a local file, ``http(s)://`` or ``s3://``; an
ItemCollection gives one source per item. Which bands form the stack, in this order:

- ``--assets B04,B03,B02``: every band of those assets;
- else ``-b red,green,blue`` (names): for each name the band whose ``eo:bands``/``bands`` common name
  or name matches, single-band assets first;
- else the item's only data raster asset (an item with several must say which, with one of the above).

The assets must share a CRS and a footprint; at different resolutions (Sentinel-2's 10 m and 20 m
bands) they are **resampled to the finest** grid, nearest neighbour (values unchanged, no mixing
with nodata). Different CRSs or footprints are refused. Each band of the VRT carries its asset
key and common name (band metadata ``stac_asset``, ``common_name``), which is how ``-b`` names are
resolved on it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Optional
from xml.sax.saxutils import escape

from segxai_cli.cloud.fetch import read_text
from segxai_cli.cloud.redact import redact_url
from segxai_cli.errors import InputError, UsageError
from segxai_cli.raster.sources.base import RasterSource

RASTER_TYPES = ("image/tiff", "image/jp2", "application/x-hdf", "image/vnd.stac.geotiff")
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
NOT_DATA = {"thumbnail", "overview", "metadata", "visual-thumbnail"}
_VRTS: dict[tuple, str] = {}  # (uri, bands) → VRT XML, per process


def _pystac():
    try:
        import pystac
    except ImportError:
        raise InputError("STAC inputs need pystac: pip install 'segxai[stac]'") from None
    return pystac


@dataclass(frozen=True, order=True)
class StacItemSource(RasterSource):
    """One STAC Item; ``bands`` = the stack as (asset key, 1-based band of the asset, label)."""

    item: str = ""  # the Item as JSON text (self-contained: picklable, no second download)
    bands: tuple[tuple[str, int, str], ...] = ()
    item_id: str = ""

    @classmethod
    def claims(cls, uri: str) -> bool:
        return re.sub(r"[?#].*$", "", uri).lower().endswith(".json")

    # ------------------------------------------------------------------ reading the document
    @classmethod
    def expand(cls, uri: str, assets: Optional[tuple[str, ...]] = None,
               names: Optional[tuple[str, ...]] = None) -> list["StacItemSource"]:
        """The items of a STAC Item or ItemCollection document, each with its stack selected."""
        pystac = _pystac()
        try:
            doc = json.loads(read_text(uri))
        except ValueError as exc:
            raise InputError(f"{redact_url(uri)}: not a JSON document ({exc})") from None
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == "Feature":
            items = [pystac.Item.from_dict(doc, href=uri, preserve_dict=False)]
        elif kind == "FeatureCollection":
            items = list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
            for it in items:
                it.set_self_href(None)
        else:
            raise InputError(f"{redact_url(uri)}: a STAC {doc.get('type', 'document') if isinstance(doc, dict) else 'value'}, "
                             "not an Item or ItemCollection (give its items)")
        out = []
        for it in items:
            _absolute_hrefs(it, uri)
            ref = uri if kind == "Feature" else f"{uri}#{it.id}"
            out.append(cls(ref, json.dumps(it.to_dict(include_self_link=False)), select(it, assets, names), it.id))
        return out

    def pystac_item(self):
        return _pystac().Item.from_dict(json.loads(self.item))

    # ------------------------------------------------------------------ as a raster source
    @property
    def is_local(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return f"{self.item_id}.json"

    @property
    def stem(self) -> str:
        return re.sub(r"[^\w.-]+", "_", self.item_id) or "item"

    @property
    def href(self) -> str:
        return str(self)

    def resolved(self) -> "StacItemSource":
        """This source with its item read (a location given directly: one item, the default stack)."""
        if self.item:
            return self
        items = self.expand(self.uri)
        if len(items) != 1:
            raise InputError(f"{self}: {len(items)} items; expand it as an input list")
        return items[0]

    def asset_hrefs(self) -> dict[str, str]:
        src = self.resolved()
        assets = json.loads(src.item)["assets"]
        return {key: assets[key]["href"] for key, _, _ in src.bands}

    def remote_prefixes(self) -> list[str]:
        return [p for h in self.asset_hrefs().values() for p in RasterSource.of(h).remote_prefixes()]

    @property
    def gdal_path(self) -> str:
        """The stack as VRT XML (GDAL opens the document itself), built once per process."""
        src = self.resolved()
        key = (src.uri, src.bands)
        if key not in _VRTS:
            _VRTS[key] = stack_vrt(src)
        return _VRTS[key]

    def exists(self) -> bool:
        return True

    def __str__(self) -> str:
        return redact_url(self.uri)


def _absolute_hrefs(item, doc_uri: str) -> None:
    from urllib.parse import urljoin

    for asset in item.assets.values():
        href = asset.href
        if "://" not in href and not href.startswith("/"):
            base = doc_uri if "://" in doc_uri else "file://" + os.path.abspath(doc_uri)
            href = urljoin(base, href)
            asset.href = href[len("file://"):] if href.startswith("file://") else href


# ---------------------------------------------------------------------- which bands
def _band_meta(asset) -> list[dict[str, Any]]:
    fields = asset.extra_fields
    bands = fields.get("eo:bands") or fields.get("bands") or []
    return [b for b in bands if isinstance(b, dict)]


def _common(b: dict[str, Any]) -> Optional[str]:
    return b.get("common_name") or b.get("eo:common_name")


def raster_assets(item) -> list[str]:
    """The item's data raster assets (no thumbnails, overviews or metadata)."""
    out = []
    for key, a in item.assets.items():
        roles = set(a.roles or [])
        is_raster = (a.media_type or "").split(";")[0].strip() in RASTER_TYPES or a.href.lower().split("?")[0].endswith(RASTER_SUFFIXES)
        if is_raster and not (roles & NOT_DATA and "data" not in roles):
            out.append(key)
    return out


def select(item, assets: Optional[tuple[str, ...]], names: Optional[tuple[str, ...]]) -> tuple[tuple[str, int, str], ...]:
    """The stack of ``item`` (see the module docstring)."""
    data = raster_assets(item)
    if assets:
        missing = [a for a in assets if a not in item.assets]
        if missing:
            raise InputError(f"item {item.id}: no asset {', '.join(missing)} (raster assets: {', '.join(data) or 'none'})")
        out = []
        for key in assets:
            meta = _band_meta(item.assets[key]) or [{}]
            out += [(key, i, _common(b) or b.get("name") or (key if len(meta) == 1 else f"{key}#{i}"))
                    for i, b in enumerate(meta, 1)]
        return tuple(out)
    if names:
        return tuple(_by_name(item, data, n) for n in names)
    if len(data) != 1:
        raise InputError(f"item {item.id}: {len(data)} raster assets ({', '.join(data) or 'none'}); "
                         "choose with --assets or -b common names (e.g. -b red,green,blue)")
    meta = _band_meta(item.assets[data[0]]) or [{}]
    return tuple((data[0], i, _common(b) or b.get("name") or data[0]) for i, b in enumerate(meta, 1))


def _by_name(item, data: list[str], name: str) -> tuple[str, int, str]:
    low = name.lower()
    hits = []
    for key in data:
        meta = _band_meta(item.assets[key])
        for i, b in enumerate(meta or [{}], 1):
            if low in {str(_common(b) or "").lower(), str(b.get("name") or "").lower()} or (len(meta) <= 1 and low == key.lower()):
                hits.append((len(meta) > 1, key, i))
    if not hits:
        raise InputError(f"item {item.id}: no band named {name!r} (eo:bands common names or names of its assets "
                         f"{', '.join(data)})")
    hits.sort()
    if len(hits) > 1 and hits[0][0] == hits[1][0]:
        raise InputError(f"item {item.id}: band {name!r} is in several assets ({', '.join(h[1] for h in hits)}); "
                         "choose with --assets")
    return hits[0][1], hits[0][2], name


def check_names(values: Optional[tuple]) -> None:
    """Band names must look like names (letters first); the check needs no item."""
    for v in values or ():
        if isinstance(v, str) and not re.fullmatch(r"[A-Za-z][\w.-]*", v):
            raise UsageError(f"-b/--bidx {v!r}: expected band numbers or band names (e.g. red,green,blue)")


# ---------------------------------------------------------------------- the VRT
def stack_vrt(source: StacItemSource) -> str:
    """Open each asset's header and stack the bands on the finest grid (see the module docstring)."""
    from segxai_cli.raster.gdal_io import gdal_open

    hrefs = source.asset_hrefs()
    grids = {}
    for key, href in hrefs.items():
        asset = RasterSource.of(href)
        with gdal_open(asset.gdal_path, f"{source} asset {key} ({asset})", asset.remote_prefixes()) as src:
            grids[key] = (asset.gdal_path, src.crs, src.transform, src.width, src.height, src.bounds,
                          src.dtypes, src.nodatavals, src.count)
    keys = list(grids)
    finest = min(keys, key=lambda k: abs(grids[k][2].a))
    _, crs, transform, width, height, bounds = grids[finest][:6]
    for k in keys:
        g = grids[k]
        if g[1] != crs:
            raise InputError(f"{source}: assets {finest} ({crs}) and {k} ({g[1]}) are in different CRSs; "
                             "segxai stacks assets of one CRS and one footprint only")
        tol = abs(g[2].a) / 2
        if any(abs(a - b) > tol for a, b in zip(g[5], bounds)):
            raise InputError(f"{source}: assets {finest} and {k} cover different footprints; "
                             "segxai stacks assets of one CRS and one footprint only")
    for key, band, _ in source.bands:
        if band > grids[key][8]:
            raise InputError(f"{source}: asset {key} has {grids[key][8]} band(s), not {band}")
    return _vrt_xml(source, grids, crs, transform, width, height)


GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}


def _vrt_xml(source: StacItemSource, grids: dict, crs, transform, width: int, height: int) -> str:
    t = transform
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs is not None:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")
    lines.append(f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
    for i, (key, band, label) in enumerate(source.bands, 1):
        path, _, _, w, h, _, dtypes, nodatas, _ = grids[key]
        nodata = nodatas[band - 1]
        lines.append(f'  <VRTRasterBand dataType="{GDAL_TYPES.get(dtypes[band - 1], "Float32")}" band="{i}">')
        lines.append(f"    <Description>{escape(label)}</Description>")
        lines.append(f'    <Metadata><MDI key="stac_asset">{escape(key)}</MDI>'
                     f'<MDI key="common_name">{escape(label)}</MDI></Metadata>')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{nodata!r}</NoDataValue>")
        lines += ["    <ComplexSource>",
                  f'      <SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>',
                  f"      <SourceBand>{band}</SourceBand>",
                  f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
                  f'      <DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>']
        if nodata is not None:
            lines.append(f"      <NODATA>{nodata!r}</NODATA>")
        lines += ["    </ComplexSource>", "  </VRTRasterBand>"]
    lines.append("</VRTDataset>")
    return "\n".join(lines)

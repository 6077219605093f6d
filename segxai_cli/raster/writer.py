"""The streaming GeoTIFF writer: temp tiled GTiff → Cloud-Optimized GeoTIFF → atomic rename.

Life of one output (``OUTDIR/x_saliency.tif``):

1. ``.x_saliency.tif.<host>.<pid>.part.tif`` — a tiled GTiff (fast ZSTD level 1), written strip by
   strip as the pipeline finishes rows (block-aligned: every compressed block is written once). It
   carries the input's CRS and transform, the output nodata, band descriptions and tags.
2. :meth:`StreamingWriter.finalize` converts it with GDAL's COG driver (``rasterio.shutil.copy``,
   which streams; GDAL builds the overviews in its own temp file) into
   ``.x_saliency.tif.<host>.<pid>.cog.tif``. A per-band linear rescale (per-scene min-max) is applied
   during that copy through a VRT (``ComplexSource`` ``ScaleOffset``/``ScaleRatio``), so the raw
   maps are never rewritten.
3. Stale sidecars of an older output (``x_saliency.tif.aux.xml``, ``.msk``, ``.ovr``) are removed
   and the COG is ``os.replace``-d onto the final name — a reader, or a run killed at any moment,
   never sees a half-written file under the final name.

Any exception (including KeyboardInterrupt) deletes the temp files. Temp files of a killed run are
recognised by name and removed by :func:`remove_stale_temps` on the next run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from segxai_cli.errors import OutputError
from segxai_cli.files import publish, remove_stale_sidecars, temp_name

COMPRESSIONS = ("deflate", "zstd", "lzw", "none")


class StreamingWriter:
    """Write a raster strip by strip, then publish it as a COG under its final name.

    Use as a context manager (temp files are removed if the block raises) or call :meth:`abort`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        count: int,
        dtype: str,
        crs=None,
        transform=None,
        nodata: float | None = None,
        descriptions: Sequence[str] | None = None,
        tags: Mapping[str, object] | None = None,
        band_tags: Sequence[Mapping[str, object]] | None = None,
        colormap: Mapping[int, tuple[int, ...]] | None = None,
        block: int = 256,
        compress: str = "deflate",
        overview_resampling: str = "average",
        cog_blocksize: int = 512,
        threads: int | None = None,
        cache_mb: int = 256,
    ) -> None:
        compress = (compress or "none").lower()
        if compress not in COMPRESSIONS:
            raise OutputError(f"compression {compress!r} not supported; use one of {', '.join(COMPRESSIONS)}")
        self.path = Path(path)
        self.width, self.height, self.count, self.dtype = width, height, count, dtype
        self.crs, self.transform, self.nodata = crs, transform, nodata
        self.descriptions = list(descriptions or [])
        self.tags = {k: str(v) for k, v in (tags or {}).items()}
        self.band_tags = [{k: str(v) for k, v in (bt or {}).items()} for bt in (band_tags or [])]
        self.colormap = dict(colormap) if colormap else None
        self.block = block
        self.compress = compress
        self.overview_resampling = overview_resampling
        self.cog_blocksize = cog_blocksize
        self.threads = threads
        self.cache_mb = cache_mb
        self.tmp = temp_name(self.path, "part.tif")
        self.tmp_cog = temp_name(self.path, "cog.tif")
        self.tmp_vrt = temp_name(self.path, "vrt")
        self._dst = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "StreamingWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close_temp()

    def open(self) -> "StreamingWriter":
        folder = self.path.parent
        if not folder.is_dir():
            raise OutputError(f"{self.path}: folder {folder} does not exist")
        blk = self.block
        tiled = self.width >= 16 and self.height >= 16
        profile = dict(
            driver="GTiff", width=self.width, height=self.height, count=self.count, dtype=self.dtype,
            nodata=self.nodata, BIGTIFF="IF_SAFER", compress="zstd", zstd_level=1,
            predictor=3 if np.dtype(self.dtype).kind == "f" else 2,
        )
        if tiled:
            profile.update(tiled=True, blockxsize=blk, blockysize=blk)
        if self.crs is not None:
            profile["crs"] = self.crs
        if self.transform is not None:
            profile["transform"] = self.transform
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self.tmp, "w", **profile)
        except (RasterioIOError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot write in {folder} ({_first_line(exc)})") from None
        self._apply_metadata(self._dst)
        return self

    def _apply_metadata(self, dst) -> None:
        for i, d in enumerate(self.descriptions[: self.count], start=1):
            dst.set_band_description(i, d)
        if self.tags:
            dst.update_tags(**self.tags)
        for i, bt in enumerate(self.band_tags[: self.count], start=1):
            if bt:
                dst.update_tags(i, **bt)
        if self.colormap:
            dst.write_colormap(1, self.colormap)

    def write(self, row0: int, data: np.ndarray) -> None:
        """Write full-width rows ``row0 .. row0 + h`` from ``data`` (count, h, width) or (h, width)."""
        if self._dst is None:
            raise RuntimeError("writer is not open")
        arr = data if data.ndim == 3 else data[None]
        if arr.shape[0] != self.count or arr.shape[2] != self.width:
            raise ValueError(f"strip shape {arr.shape} does not fit {self.count} x ? x {self.width}")
        window = Window(0, row0, self.width, arr.shape[1])
        try:
            self._dst.write(arr.astype(self.dtype, copy=False), window=window)
        except (RasterioIOError, OSError) as exc:
            raise OutputError(f"{self.path}: write failed ({_first_line(exc)}); is the disk full?") from None

    def close_temp(self) -> None:
        if self._dst is not None:
            try:
                self._dst.close()
            finally:
                self._dst = None

    def abort(self) -> None:
        """Close and delete every temp file of this output (the final name is never touched)."""
        try:
            self.close_temp()
        except Exception:
            pass
        for p in (self.tmp, self.tmp_cog, self.tmp_vrt):
            try:
                p.unlink(missing_ok=True)
                Path(str(p) + ".aux.xml").unlink(missing_ok=True)
            except OSError:
                pass

    # ------------------------------------------------------------------ publishing
    def finalize(self, scale: Sequence[tuple[float, float]] | None = None) -> Path:
        """COG-convert the temp file (optionally ``value * ratio + offset`` per band) and rename it.

        ``scale``: one ``(offset, ratio)`` per band, or None to copy the values unchanged.
        """
        try:
            self.close_temp()
            source = str(self.tmp)
            if scale is not None:
                self.tmp_vrt.write_text(self._scaled_vrt(scale), encoding="utf-8")
                source = str(self.tmp_vrt)
            opts = dict(
                COMPRESS=self.compress.upper() if self.compress != "none" else "NONE",
                BLOCKSIZE=self.cog_blocksize,
                BIGTIFF="IF_SAFER",
                OVERVIEWS="AUTO",
                OVERVIEW_RESAMPLING=self.overview_resampling.upper(),
            )
            if self.compress in ("deflate", "zstd", "lzw"):
                opts["PREDICTOR"] = "YES"
            if self.threads:
                opts["NUM_THREADS"] = str(self.threads)
            # GDAL's block cache defaults to 5 % of the RAM; bounded here so that converting a huge
            # scene does not fill it with source blocks (peak memory independent of the scene size).
            with warnings.catch_warnings(), rasterio.Env(GDAL_CACHEMAX=self.cache_mb * 1024 * 1024):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                rasterio.shutil.copy(source, str(self.tmp_cog), driver="COG", **opts)
            remove_stale_sidecars(self.path)
            publish(self.tmp_cog, self.path)
        except (RasterioIOError, OSError) as exc:
            self.abort()
            raise OutputError(f"{self.path}: cannot write ({_first_line(exc)})") from None
        except BaseException:
            self.abort()
            raise
        for p in (self.tmp, self.tmp_vrt):
            p.unlink(missing_ok=True)
            Path(str(p) + ".aux.xml").unlink(missing_ok=True)
        return self.path

    def _scaled_vrt(self, scale: Sequence[tuple[float, float]]) -> str:
        """A VRT over the temp file that rescales each band linearly, with all metadata repeated."""
        if len(scale) != self.count:
            raise ValueError(f"need {self.count} (offset, ratio) pairs, got {len(scale)}")
        gdal_type = {"float32": "Float32", "float64": "Float64", "uint8": "Byte", "uint16": "UInt16",
                     "int16": "Int16", "int32": "Int32", "uint32": "UInt32"}[np.dtype(self.dtype).name]
        lines = [f'<VRTDataset rasterXSize="{self.width}" rasterYSize="{self.height}">']
        if self.crs is not None:
            lines.append(f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(self.crs.to_wkt())}</SRS>')
        if self.transform is not None:
            t = self.transform
            lines.append(f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
        lines.append(_metadata_xml(self.tags, "  "))
        nodata = _nodata_text(self.nodata)
        for b in range(1, self.count + 1):
            off, ratio = scale[b - 1]
            lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{b}">')
            if b - 1 < len(self.descriptions):
                lines.append(f"    <Description>{escape(self.descriptions[b - 1])}</Description>")
            if nodata is not None:
                lines.append(f"    <NoDataValue>{nodata}</NoDataValue>")
            if b - 1 < len(self.band_tags):
                lines.append(_metadata_xml(self.band_tags[b - 1], "    "))
            lines += [
                "    <ComplexSource>",
                f'      <SourceFilename relativeToVRT="0">{escape(str(self.tmp.resolve()))}</SourceFilename>',
                f"      <SourceBand>{b}</SourceBand>",
                f'      <SrcRect xOff="0" yOff="0" xSize="{self.width}" ySize="{self.height}"/>',
                f'      <DstRect xOff="0" yOff="0" xSize="{self.width}" ySize="{self.height}"/>',
                f"      <ScaleOffset>{float(off)!r}</ScaleOffset>",
                f"      <ScaleRatio>{float(ratio)!r}</ScaleRatio>",
            ]
            if nodata is not None:
                lines.append(f"      <NODATA>{nodata}</NODATA>")
            lines += ["    </ComplexSource>", "  </VRTRasterBand>"]
        lines.append("</VRTDataset>")
        return "\n".join(line for line in lines if line) + "\n"


def _metadata_xml(tags: Mapping[str, str], indent: str) -> str:
    if not tags:
        return ""
    items = "".join(f'{indent}  <MDI key="{escape(k, {chr(34): "&quot;"})}">{escape(v)}</MDI>\n' for k, v in tags.items())
    return f"{indent}<Metadata>\n{items}{indent}</Metadata>"


def _nodata_text(nodata: float | None) -> str | None:
    if nodata is None:
        return None
    if isinstance(nodata, float) and math.isnan(nodata):
        return "nan"
    return repr(float(nodata))


def minmax_scale(lo: float, hi: float, eps: float = 1e-7) -> tuple[float, float]:
    """``(offset, ratio)`` mapping [lo, hi] to [0, 1) like the engine's min-max (constant map → 0)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 0.0
    ratio = 1.0 / (hi - lo + eps)
    return -lo * ratio, ratio


def cog_problems(path: str | Path) -> list[str]:
    """A minimal Cloud-Optimized GeoTIFF check (what GDAL's validate_cloud_optimized_geotiff.py
    looks at, through rasterio): tiled, ``LAYOUT=COG`` written by the COG driver, overviews on
    rasters larger than one block, overviews tiled. Returns the problems; empty = valid."""
    problems = []
    with rasterio.open(path) as src:
        if src.driver not in ("GTiff", "COG"):
            problems.append(f"driver is {src.driver}")
        prof = src.profile
        if not prof.get("tiled"):
            problems.append("not tiled")
        layout = src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        if layout != "COG":
            problems.append(f"IMAGE_STRUCTURE LAYOUT is {layout!r}, not 'COG'")
        bx, by = src.block_shapes[0][1], src.block_shapes[0][0]
        ovr = src.overviews(1)
        if (src.width > bx or src.height > by) and not ovr:
            problems.append("no overviews on a raster larger than one block")
        for i, f in enumerate(ovr):
            if f <= 1:
                problems.append(f"bad overview factor {f}")
    return problems


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""The streaming GeoTIFF writer: temp tiled GTiff → Cloud-Optimized GeoTIFF → atomic rename.

Life of one output (``OUTDIR/x_saliency.tif``):

1. ``.x_saliency.tif.<host>.<pid>.part.tif`` — a tiled GTiff (fast ZSTD level 1), written strip by
   strip as the pipeline finishes rows (block-aligned: every compressed block is written once). It
   carries the input's CRS and transform, the output nodata, band descriptions and tags.
2. :meth:`StreamingWriter.finalize` converts it with GDAL's COG driver (``rasterio.shutil.copy``,
   which streams; GDAL builds the overviews in its own temp file) into
   ``.x_saliency.tif.<host>.<pid>.cog.tif``. A per-band rescale (per-scene min-max) is applied
   during that copy through a VRT (``ComplexSource`` ``ScaleOffset``/``ScaleRatio``, or a clamping
   ``LUT``), so the raw maps are never rewritten. The finished COG is then **read back** — its
   header, its smallest overview and its first and last full-resolution blocks — because GDAL can
   report a full disk as a mere warning and leave a truncated file behind. Every band carries exact
   ``STATISTICS_*`` metadata, accumulated while the strips were written (``raster.band_statistics``).
3. :meth:`StreamingWriter.commit` removes stale sidecars of an older output (``.aux.xml``, ``.msk``,
   ``.ovr``) and ``os.replace``-s the COG onto the final name — a reader, or a run killed at any
   moment, never sees a half-written file under the final name. A scene finalizes all its outputs
   before it commits any, so a failure leaves none of them published.

Every GDAL or OS write error becomes one :class:`OutputError` naming the file and the reason
("no space left on device"); any exception (KeyboardInterrupt and signals included) deletes the temp
files. Temp files of a killed run are recognised by name and removed by ``files.remove_stale_temps``.
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
from rasterio._err import CPLE_BaseError
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from segxai_cli.errors import OutputError
from segxai_cli.faults import fault_point
from segxai_cli.files import atomic_write_text, publish, remove_stale_sidecars, temp_name, write_error
from segxai_cli.raster.band_statistics import RunningStatistics
from segxai_cli.raster.vrt import Piece, metadata_xml, nodata_text, source_xml

COMPRESSIONS = ("deflate", "zstd", "lzw", "none")
GDAL_ERRORS = (RasterioIOError, CPLE_BaseError, OSError)
LOW_SPACE = 1 << 20  # a write failure with less than this left in the folder is a full disk


def output_error(path: Path, exc: BaseException) -> OutputError:
    """One line for a failed raster write; a GDAL error on a (nearly) full disk says so."""
    err = write_error(path, exc)
    if "no space left" not in str(err):
        try:
            import shutil

            if shutil.disk_usage(path.parent).free < LOW_SPACE:
                return OutputError(f"{path}: cannot write (no space left on device)")
        except OSError:
            pass
    return err


class StreamingWriter:
    """Write a raster strip by strip, then publish it as a COG under its final name.

    Use as a context manager (temp files are removed if the block raises) or call :meth:`abort`.
    A scene split across workers writes pieces (:class:`Piece`) instead (``open(rows=…)``, one per block);
    the writer that publishes the output :meth:`adopt`-s them and makes the COG from all of them.
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
        self.block = block
        self.compress = compress
        self.overview_resampling = overview_resampling
        self.cog_blocksize = cog_blocksize
        self.threads = threads
        self.cache_mb = cache_mb
        self.tmp = temp_name(self.path, "part.tif")
        self.tmp_cog = self.finished_path(self.path)
        self.tmp_vrt = temp_name(self.path, "vrt")
        self._dst = None
        self.origin = 0  # scene row of the temp file's first row
        self.rows: tuple[int, int] | None = None
        self.pieces: list[Piece] = []
        self.running = RunningStatistics(count, nodata)
        self.statistics: list[dict[str, float]] = []  # STATISTICS_* of each band, known after finalize

    @staticmethod
    def finished_path(final: str | Path) -> Path:
        """Where the checked COG of ``final`` lies between :meth:`finalize` and :meth:`commit` (other
        outputs of the scene, such as its STAC Item, describe it from there)."""
        return temp_name(final, "cog.tif")

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "StreamingWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close_temp()

    def open(self, rows: tuple[int, int] | None = None) -> "StreamingWriter":
        """Create the temp file; ``rows=(y0, y1)``: only those rows, as a :class:`Piece` (see :meth:`piece`)."""
        folder = self.path.parent
        if not folder.is_dir():
            raise OutputError(f"{self.path}: folder {folder} does not exist")
        blk = self.block
        height = self.height
        if rows is not None:
            self.rows, self.origin = rows, rows[0] - rows[0] % blk
            self.tmp = temp_name(self.path, f"rows{rows[0]}-{rows[1]}.part.tif")
            height = rows[1] - self.origin
        tiled = self.width >= 16 and height >= 16
        profile = dict(
            driver="GTiff", width=self.width, height=height, count=self.count, dtype=self.dtype,
            nodata=self.nodata, BIGTIFF="IF_SAFER", compress="zstd", zstd_level=1,
            predictor=3 if np.dtype(self.dtype).kind == "f" else 2,
        )
        if tiled:
            profile.update(tiled=True, blockxsize=blk, blockysize=blk)
        if self.crs is not None:
            profile["crs"] = self.crs
        if self.transform is not None:
            profile["transform"] = self.transform * self.transform.translation(0, self.origin) if self.origin \
                else self.transform
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dst = rasterio.open(self.tmp, "w", **profile)
            self._apply_metadata(self._dst)
        except GDAL_ERRORS as exc:
            self.abort()
            raise output_error(self.path, exc) from None
        return self

    def _apply_metadata(self, dst) -> None:
        for i, d in enumerate(self.descriptions[: self.count], start=1):
            dst.set_band_description(i, d)
        if self.tags:
            dst.update_tags(**self.tags)
        for i, bt in enumerate(self.band_tags[: self.count], start=1):
            if bt:
                dst.update_tags(i, **bt)

    def write(self, row0: int, data: np.ndarray) -> None:
        """Write full-width rows ``row0 .. row0 + h`` from ``data`` (count, h, width) or (h, width)."""
        if self._dst is None:
            raise RuntimeError("writer is not open")
        arr = data if data.ndim == 3 else data[None]
        if arr.shape[0] != self.count or arr.shape[2] != self.width:
            raise ValueError(f"strip shape {arr.shape} does not fit {self.count} x ? x {self.width}")
        window = Window(0, row0 - self.origin, self.width, arr.shape[1])
        self.running.add(arr)
        try:
            fault_point("write")
            self._dst.write(arr.astype(self.dtype, copy=False), window=window)
        except GDAL_ERRORS as exc:
            raise output_error(self.path, exc) from None

    def close_temp(self) -> None:
        if self._dst is not None:
            try:
                self._dst.close()
            finally:
                self._dst = None

    def piece(self) -> Piece:
        """The rows this writer holds (after ``open(rows=…)``), closed, for the writer that publishes."""
        self.close_temp()
        if self.rows is None:
            raise RuntimeError("not opened with rows=(y0, y1)")
        return Piece(self.tmp, self.rows[0], self.rows[1], self.origin)

    def adopt(self, pieces: Sequence[Piece]) -> None:
        """Publish these pieces (covering every row, written elsewhere) instead of a temp file of its own."""
        covered = sorted((p.y0, p.y1) for p in pieces)
        if not covered or covered[0][0] != 0 or covered[-1][1] != self.height \
                or any(a[1] != b[0] for a, b in zip(covered, covered[1:])):
            raise ValueError(f"pieces {covered} do not cover rows 0..{self.height} exactly")
        self.pieces = list(pieces)

    def abort(self) -> None:
        """Close and delete every temp file of this output (the final name is never touched)."""
        try:
            self.close_temp()
        except Exception:
            pass
        for p in (self.tmp, self.tmp_cog, self.tmp_vrt, *(q.path for q in self.pieces)):
            try:
                p.unlink(missing_ok=True)
                Path(str(p) + ".aux.xml").unlink(missing_ok=True)
            except OSError:
                pass

    # ------------------------------------------------------------------ publishing
    def finalize(self, scale: Sequence[tuple[float, float]] | None = None, clamp: bool = False) -> "StreamingWriter":
        """Convert the temp file into a checked COG, still under a temp name (see :meth:`commit`).

        ``scale``: one ``(offset, ratio)`` per band (``value * ratio + offset``), or None to copy the
        values unchanged. ``clamp``: values the scale maps below 0 become 0 (a clamping LUT).
        """
        try:
            self.close_temp()
            source = str(self.tmp)
            # STATISTICS_* from the strips written here; a split scene's pieces were written elsewhere
            # (QGIS computes their statistics when it first needs them).
            self.statistics = [] if self.pieces else self.running.statistics(self.width * self.height, scale, clamp)
            if scale is not None or self.pieces:
                atomic_write_text(self.tmp_vrt, self._vrt(scale, clamp))
                source = str(self.tmp_vrt)
            else:
                self._write_statistics()
            fault_point("convert")
            # GDAL's block cache defaults to 5 % of the RAM; bounded here so that converting a huge
            # scene does not fill it with source blocks (peak memory independent of the scene size).
            with warnings.catch_warnings(), rasterio.Env(GDAL_CACHEMAX=self.cache_mb * 1024 * 1024):
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                rasterio.shutil.copy(source, str(self.tmp_cog), driver="COG", **self._cog_options())
            fault_point("verify")
            self.verify(self.tmp_cog)
        except GDAL_ERRORS as exc:
            err = output_error(self.path, exc)
            self.abort()
            raise err from None
        except BaseException:
            self.abort()
            raise
        return self

    def _write_statistics(self) -> None:
        """Band statistics into the temp file, so the COG copy carries them (QGIS and gdalinfo read
        them instead of scanning)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(self.tmp, "r+") as dst:
                for b, st in enumerate(self.statistics, 1):
                    if st:
                        dst.update_tags(b, **{k: repr(float(v)) for k, v in st.items()})

    def commit(self) -> Path:
        """Rename the checked COG onto the final name (after stale sidecars of an older file are gone)."""
        try:
            fault_point("commit")
            remove_stale_sidecars(self.path)
            publish(self.tmp_cog, self.path)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        except BaseException:
            self.abort()
            raise
        for p in (self.tmp, self.tmp_vrt, *(q.path for q in self.pieces)):
            p.unlink(missing_ok=True)
            Path(str(p) + ".aux.xml").unlink(missing_ok=True)
        return self.path

    def _cog_options(self) -> dict[str, str]:
        opts = dict(
            COMPRESS=self.compress.upper() if self.compress != "none" else "NONE",
            BLOCKSIZE=str(self.cog_blocksize),
            BIGTIFF="IF_SAFER",
            OVERVIEWS="AUTO",
            OVERVIEW_RESAMPLING=self.overview_resampling.upper(),
        )
        if self.compress in ("deflate", "zstd", "lzw"):
            opts["PREDICTOR"] = "YES"
        if self.threads:
            opts["NUM_THREADS"] = str(self.threads)
        return opts

    def verify(self, path: Path) -> None:
        """Read back what a truncated or partly written file would not hold: the header, the smallest
        overview, and the first and last full-resolution blocks."""
        with rasterio.open(path) as src:
            if (src.width, src.height, src.count) != (self.width, self.height, self.count) or src.dtypes[0] != self.dtype:
                raise OutputError(f"{self.path}: the written file does not read back as written")
            ovr = src.overviews(1)
            if ovr:
                f = ovr[-1]
                src.read(out_shape=(self.count, max(1, self.height // f), max(1, self.width // f)))
            bh, bw = src.block_shapes[0]
            src.read(window=Window(0, 0, min(bw, self.width), min(bh, self.height)))
            r0, c0 = ((self.height - 1) // bh) * bh, ((self.width - 1) // bw) * bw
            src.read(window=Window(c0, r0, self.width - c0, self.height - r0))

    def _vrt(self, scale: Sequence[tuple[float, float]] | None, clamp: bool = False) -> str:
        """A VRT over the temp file (or the adopted pieces, stacked) that rescales each band linearly
        (clamped at 0 with ``clamp``: a two-point LUT, which GDAL holds constant outside its range),
        or copies it (``scale=None``), with all metadata repeated."""
        if scale is not None and len(scale) != self.count:
            raise ValueError(f"need {self.count} (offset, ratio) pairs, got {len(scale)}")
        gdal_type = {"float32": "Float32", "float64": "Float64", "uint8": "Byte", "uint16": "UInt16",
                     "int16": "Int16", "int32": "Int32", "uint32": "UInt32"}[np.dtype(self.dtype).name]
        lines = [f'<VRTDataset rasterXSize="{self.width}" rasterYSize="{self.height}">']
        if self.crs is not None:
            lines.append(f'  <SRS dataAxisToSRSAxisMapping="1,2">{escape(self.crs.to_wkt())}</SRS>')
        if self.transform is not None:
            t = self.transform
            lines.append(f"  <GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}</GeoTransform>")
        lines.append(metadata_xml(self.tags, "  "))
        nodata = nodata_text(self.nodata)
        pieces = self.pieces or [Piece(self.tmp, 0, self.height, 0)]
        for b in range(1, self.count + 1):
            lines.append(f'  <VRTRasterBand dataType="{gdal_type}" band="{b}">')
            if b - 1 < len(self.descriptions):
                lines.append(f"    <Description>{escape(self.descriptions[b - 1])}</Description>")
            if nodata is not None:
                lines.append(f"    <NoDataValue>{nodata}</NoDataValue>")
            band_md = {**(self.band_tags[b - 1] if b - 1 < len(self.band_tags) else {}),
                       **{k: repr(float(v)) for k, v in (self.statistics[b - 1] if b - 1 < len(self.statistics) else {}).items()}}
            if band_md:
                lines.append(metadata_xml(band_md, "    "))
            for p in pieces:
                lines += source_xml(p, b, self.width, scale[b - 1] if scale is not None else None, clamp, nodata)
            lines.append("  </VRTRasterBand>")
        lines.append("</VRTDataset>")
        return "\n".join(line for line in lines if line) + "\n"


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


"""A pixel window of another source, under a name of its own (per-feature explanations)."""

from __future__ import annotations

from dataclasses import dataclass

from segxai_cli.raster.sources.base import RasterSource


@dataclass(frozen=True, order=True)
class WindowSource(RasterSource):
    """A pixel window of another source, under a name of its own (per-feature explanations).

    Opened through GDAL's ``vrt://…?srcwin=`` connection string: a georeferenced sub-raster that
    reads straight from the original file.
    """

    base: RasterSource = None  # type: ignore[assignment]
    window: tuple[int, int, int, int] = (0, 0, 0, 0)  # col_off, row_off, width, height
    label: str = ""

    drivers = frozenset({"VRT"})

    @classmethod
    def of_window(cls, base: RasterSource, window: tuple[int, int, int, int], label: str) -> "WindowSource":
        c, r, w, h = (int(v) for v in window)
        if base.gdal_path.startswith("<"):
            from segxai_cli.errors import InputError

            raise InputError(f"{base}: --per-feature windows of a STAC item stack are not supported; "
                             "explain the item's region with --vector (without --per-feature) or a --bbox")
        return cls(f"vrt://{base.gdal_path}?srcwin={c},{r},{w},{h}", base, (c, r, w, h), label)

    @property
    def is_local(self) -> bool:
        return False

    @property
    def name(self) -> str:
        return f"{self.label}.tif"

    @property
    def stem(self) -> str:
        return self.label

    @property
    def href(self) -> str:
        return self.base.href

    def remote_prefixes(self) -> list[str]:
        return self.base.remote_prefixes()

    def exists(self) -> bool:
        return self.base.exists()

    def __str__(self) -> str:
        c, r, w, h = self.window
        return f"{self.base}[{self.label}: cols {c}..{c + w}, rows {r}..{r + h}]"

"""What a model is, apart from its weights: :class:`ModelInfo`, checked field by field.

A checkpoint's meta can come from anywhere (an old segxai, a hand-edited dict, a hostile file), so
every field is validated on load — types and ranges — and a bad one is reported as the
checkpoint's, with one clear line, before any tensor is allocated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

from segxai_cli._version import __version__
from segxai_cli.errors import InputError, UsageError
from segxai_cli.raster.stats import BandStats

MAX_TILE = 8192  # a tile is a batch element: larger windows would not fit any GPU
MIN_TILE = 16
MAX_BANDS = 1024
MAX_CLASSES = 255  # 255 is the class raster's nodata and the masks' ignore value
CLASS_NODATA = 255


def default_class_names(classes: int) -> list[str]:
    if classes == 1:
        return ["background", "class_1"]  # binary: channel 0 is "class 1"
    return [f"class_{i}" for i in range(classes)]


@dataclass
class ModelInfo:
    """Everything about a model except its weights."""

    arch: str = "Unet"
    encoder: str = "resnet34"
    in_channels: int = 3
    classes: int = 2
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    bands: Optional[list[int]] = None
    class_names: Optional[list[str]] = None
    target_class: int = 1
    band_stats: Optional[BandStats] = None
    source_dtype: Optional[str] = None
    tile_size: int = 256
    provenance: dict[str, Any] = field(default_factory=dict)
    segxai_version: str = __version__
    family: str = "smp"
    path: Optional[str] = None
    sha256: Optional[str] = None

    def __post_init__(self) -> None:
        if self.bands is None:
            self.bands = list(range(1, self.in_channels + 1))
        if self.class_names is None:
            self.class_names = default_class_names(self.classes)

    @property
    def n_classes(self) -> int:
        """Classes of the class raster (2 for a one-channel sigmoid model)."""
        return max(self.classes, 2)

    @property
    def label(self) -> str:
        return f"{self.arch}/{self.encoder}" if self.encoder else self.arch

    def to_meta(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "arch": self.arch,
            "encoder": self.encoder,
            "model_kwargs": dict(self.model_kwargs),
            "in_channels": int(self.in_channels),
            "bands": [int(b) for b in self.bands],
            "classes": int(self.classes),
            "class_names": list(self.class_names),
            "target_class": int(self.target_class),
            "band_stats": self.band_stats.to_dict() if self.band_stats else None,
            "source_dtype": self.source_dtype,
            "tile_size": int(self.tile_size),
            "provenance": self.provenance,
            "segxai_version": self.segxai_version,
        }

    @classmethod
    def from_meta(cls, meta: Any, where: str = "checkpoint") -> "ModelInfo":
        """Build and validate from a checkpoint's meta dict; errors name ``where``."""
        return MetaReader(meta, where).info()

    def resolve_class(self, spec: Union[int, str, None]) -> tuple[int, str]:
        """``--class``: an index or a class name (default: the checkpoint's target class) → (index, name)."""
        names = list(self.class_names or [])
        valid = (0, 1) if self.classes == 1 else tuple(range(self.classes))
        if spec is None or (isinstance(spec, str) and not spec.strip()):
            idx = int(self.target_class)
        elif isinstance(spec, int) or str(spec).strip().lstrip("-").isdigit():
            idx = int(spec)
        else:
            lowered = [c.lower() for c in names]
            if str(spec).strip().lower() not in lowered:
                raise UsageError(f"--class {spec!r}: not a class of this model (classes: {_class_list(names)})")
            idx = lowered.index(str(spec).strip().lower())
        if idx not in valid:
            raise UsageError(f"--class {spec}: out of range; this model has {len(valid)} classes ({_class_list(names)})")
        return idx, (names[idx] if idx < len(names) else f"class_{idx}")


def _class_list(names: Sequence[str]) -> str:
    return ", ".join(f"{i}={n}" for i, n in enumerate(names))


class MetaReader:
    """Reads one checkpoint's meta dict, checking each field once, with errors naming the file."""

    def __init__(self, meta: Any, where: str) -> None:
        if not isinstance(meta, dict):
            raise InputError(f"{where}: checkpoint meta is {type(meta).__name__}, not a dict")
        self.meta, self.where = meta, where

    def bad(self, key: str, why: str) -> InputError:
        value = repr(self.meta.get(key))
        value = value if len(value) <= 60 else value[:57] + "..."
        return InputError(f"{self.where}: checkpoint field {key}={value} {why}")

    def text(self, key: str, default: Optional[str] = None, required: bool = True) -> Optional[str]:
        v = self.meta.get(key, default)
        if v in (None, "") and not required:
            return None
        if not isinstance(v, str) or not v.strip() or len(v) > 200:
            raise self.bad(key, "must be a non-empty name")
        return v

    def integer(self, key: str, lo: int, hi: int, default: Optional[int] = None) -> int:
        v = self.meta.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.bad(key, f"must be an integer in {lo}..{hi}")
        if not lo <= v <= hi:
            raise self.bad(key, f"is out of range ({lo}..{hi})")
        return int(v)

    def mapping(self, key: str) -> dict[str, Any]:
        v = self.meta.get(key) or {}
        if not isinstance(v, dict):
            raise self.bad(key, "must be a dict")
        return dict(v)

    def info(self) -> ModelInfo:
        in_ch = self.integer("in_channels", 1, MAX_BANDS)
        classes = self.integer("classes", 1, MAX_CLASSES)
        n_names = max(classes, 2)
        bands = self.meta.get("bands") or list(range(1, in_ch + 1))
        if (not isinstance(bands, list) or len(bands) != in_ch
                or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 100_000 for b in bands)):
            raise self.bad("bands", f"must list {in_ch} band index(es), 1-based")
        names = self.meta.get("class_names") or default_class_names(classes)
        if (not isinstance(names, list) or len(names) != n_names
                or not all(isinstance(n, str) and 0 < len(n) <= 100 for n in names)):
            raise self.bad("class_names", f"must list {n_names} class name(s)")
        target = self.integer("target_class", 0, n_names - 1, default=1 if n_names > 1 else 0)
        stats = self._band_stats(in_ch)
        dtype = self.meta.get("source_dtype")
        if dtype is not None and dtype not in _DTYPES:
            raise self.bad("source_dtype", f"is not a raster data type ({', '.join(_DTYPES)})")
        version = self.meta.get("segxai_version", "unknown")
        return ModelInfo(
            family=self.text("family", "smp"),
            arch=self.text("arch"),
            encoder=self.text("encoder", required=False) or "",
            in_channels=in_ch,
            classes=classes,
            model_kwargs=self.mapping("model_kwargs"),
            bands=[int(b) for b in bands],
            class_names=[str(n) for n in names],
            target_class=target,
            band_stats=stats,
            source_dtype=dtype,
            tile_size=self.integer("tile_size", MIN_TILE, MAX_TILE, default=256),
            provenance=self.mapping("provenance"),
            segxai_version=str(version)[:40],
        )

    def _band_stats(self, in_ch: int) -> Optional[BandStats]:
        d = self.meta.get("band_stats")
        if d is None:
            return None
        ok = isinstance(d, dict) and all(
            isinstance(d.get(k), list) and len(d[k]) == in_ch
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in d[k])
            for k in ("mean", "std")
        )
        if not ok:
            raise self.bad("band_stats", f"must hold {in_ch} finite mean and std value(s)")
        if min(d["std"]) <= 0:
            raise self.bad("band_stats", "has a standard deviation <= 0")
        return BandStats.from_dict(d)


_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64")

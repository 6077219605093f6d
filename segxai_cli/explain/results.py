"""What an explain run returns: the files of each scene and what happened to it."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from segxai_cli._version import __version__
from segxai_cli.cloud.redact import redact
from segxai_cli.errors import SegxaiError
from segxai_cli.raster.source import RasterSource

log = logging.getLogger("segxai")

if TYPE_CHECKING:
    from segxai_cli.explain.pipeline import SceneStats

RECORD_SUFFIX = "_saliency.json"  # the scene record: written last, its presence = the scene is complete


@dataclass
class OutputPaths:
    """The final files one input produces in ``outdir``: every output kind's, and the record (written last)."""

    files: dict[str, Path]

    @classmethod
    def for_stem(cls, outdir: Path, stem: str) -> "OutputPaths":
        from segxai_cli.explain.outputs import SCENE_OUTPUTS

        files: dict[str, Path] = {}
        for kind in SCENE_OUTPUTS:
            files.update(kind.files(outdir, stem))
        files["record"] = outdir / f"{stem}{RECORD_SUFFIX}"
        return cls(files)

    @property
    def saliency(self) -> Path:
        return self.files["saliency"]

    @property
    def prediction(self) -> Path:
        return self.files["prediction"]

    @property
    def record(self) -> Path:
        return self.files["record"]

    def all(self) -> list[Path]:
        return list(self.files.values())


@dataclass
class SceneResult:
    """What happened to one input."""

    input: RasterSource
    status: str  # "done" | "skipped" | "failed"
    outputs: Optional[OutputPaths] = None
    error: Optional[str] = None
    stats: Optional["SceneStats"] = None
    mean_saliency: dict[str, float] = field(default_factory=dict)
    published: dict[str, Any] = field(default_factory=dict)  # what the output kinds report for the record
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    parts: list["SceneResult"] = field(default_factory=list)  # per-feature results of this input
    location: Optional[str] = None  # where the outputs were uploaded (s3://…), when not in a local folder

    @property
    def saliency(self) -> Optional[Path]:
        return self.outputs.saliency if self.outputs else None

    @property
    def prediction(self) -> Optional[Path]:
        return self.outputs.prediction if self.outputs else None

    @property
    def megapixels_per_s(self) -> Optional[float]:
        if not self.stats or not self.seconds:
            return None
        return self.stats.width * self.stats.height / 1e6 / self.seconds

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input": str(self.input), "status": self.status}
        if self.error:
            d["error"] = self.error
        if self.outputs:
            d["outputs"] = {k: f"{self.location}/{v.name}" if self.location else str(v) for k, v in self.outputs.files.items()}
        if self.stats:
            d["tiles"] = self.stats.tiles
            d["tiles_computed"] = self.stats.tiles_computed
            d["seconds"] = round(self.seconds, 3)
            mps = self.megapixels_per_s
            d["megapixels_per_s"] = round(mps, 4) if mps is not None else None
        if self.mean_saliency:
            d["mean_saliency"] = {k: rounded(v) for k, v in self.mean_saliency.items()}
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d


@dataclass
class RunResult:
    """What happened to every input of :func:`~segxai_cli.explain.explain_scenes`."""

    scenes: list[SceneResult]
    outdir: Union[Path, str]  # a folder, or s3://bucket/prefix
    seconds: float = 0.0
    manifest: Optional[Path] = None
    csv: Optional[Path] = None

    @property
    def failed(self) -> list[SceneResult]:
        return [s for s in self.scenes if s.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {k: sum(1 for s in self.scenes if s.status == k) for k in ("done", "skipped", "failed")}

    def summary(self) -> dict[str, Any]:
        return {
            "segxai_version": __version__,
            "outdir": str(self.outdir),
            **self.counts(),
            "seconds": round(self.seconds, 3),
            "manifest": str(self.manifest) if self.manifest else None,
            "csv": str(self.csv) if self.csv else None,
            "scenes": [s.to_dict() for s in self.scenes],
        }


def rounded(v: Optional[float], nd: int = 6) -> Optional[float]:
    """A float for a record: rounded to ``nd`` places, None when undefined (NaN/inf)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return round(float(v), nd)


def attempt(source: RasterSource, keep_going: bool, fn: Callable, *args: Any, **kwargs: Any) -> Optional[SceneResult]:
    """``fn(*args, **kwargs)``; a failure becomes a logged "failed" result (or raises without ``keep_going``)."""
    try:
        return fn(*args, **kwargs)
    except SegxaiError as exc:
        if not keep_going:
            raise
        msg = str(exc)
        if str(source) not in msg and source.name not in msg:
            msg = f"{source}: {msg}"
        log.error("%s", msg)
        return SceneResult(source, "failed", error=msg)
    except Exception as exc:  # a bug or an unexpected library error: report, keep going
        if not keep_going:
            raise
        msg = redact(f"{source}: {type(exc).__name__}: {exc}")  # no URL secret in what a library said
        log.error("%s", msg)
        log.debug("traceback", exc_info=True)
        return SceneResult(source, "failed", error=msg)

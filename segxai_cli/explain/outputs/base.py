"""What every output kind of a scene implements, and what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from segxai_cli._version import __version__
from segxai_cli.raster.source import RasterSource

if TYPE_CHECKING:
    import numpy as np

    from segxai_cli.explain.options import ExplainOptions
    from segxai_cli.explain.pipeline import SceneStats
    from segxai_cli.model.info import ModelInfo


@dataclass(frozen=True)
class SceneContext:
    """One scene as the outputs see it: where it comes from, its grid, the model and the options."""

    source: RasterSource
    outdir: Path
    info: "ModelInfo"
    opts: "ExplainOptions"
    width: int
    height: int
    crs: Any
    transform: Any
    bands: tuple[int, ...] = ()  # the input bands read (1-based, names resolved)
    # key -> where a finalized (checked, not yet committed) file is now: later kinds read from there
    finalized: dict[str, Path] = field(default_factory=dict)

    def tags(self) -> dict[str, Any]:
        """Tags every raster output carries (provenance in GDAL metadata)."""
        info, opts = self.info, self.opts
        return {
            "segxai_version": __version__,
            "source": self.source.name,
            "model": Path(info.path).name if info.path else info.label,
            "model_sha256": info.sha256 or "",
            "model_arch": info.label,
            "target_class": opts.target_class,
            "target_class_name": opts.class_name,
        }


class SceneOutput:
    """One output kind of a scene (see the package docstring)."""

    kind: ClassVar[str] = "output"

    def __init__(self, scene: SceneContext) -> None:
        self.scene = scene

    @classmethod
    def files(cls, outdir: Path, stem: str) -> dict[str, Path]:
        """The final files of this kind for scene ``stem`` (name → path)."""
        return {}

    @property
    def writers(self) -> list:
        """The :class:`~segxai_cli.raster.writer.StreamingWriter` objects of this kind's rasters."""
        return []

    def open(self, rows: "tuple[int, int] | None" = None) -> None:
        """Prepare temp files before the first strip; ``rows=(y0, y1)``: only those rows (a block of a
        split scene, written by a worker; see :meth:`pieces`)."""
        for w in self.writers:
            w.open(rows)

    def pieces(self) -> list:
        """A block's temp files, closed, to be adopted (:meth:`adopt`) by the kind that publishes the scene."""
        return [w.piece() for w in self.writers]

    def adopt(self, blocks: list) -> None:
        """Publish the blocks' pieces (``blocks``: one :meth:`pieces` list per block) instead of strips."""
        for i, w in enumerate(self.writers):
            w.adopt([b[i] for b in blocks])

    def write(self, row0: int, saliency: "np.ndarray", prediction: "np.ndarray") -> None:
        """Full-width rows ``row0 …``: saliency (bands, h, W) float32, prediction (h, W) uint8."""

    def finalize(self, stats: "SceneStats") -> dict[str, Any]:
        """Finish and check every file under its temp name; returns values for the scene's record."""
        return {}

    def commit(self) -> list[Path]:
        """Rename the finished files onto their final names (fast: every output of the scene is
        finalized before any is committed); returns the final paths."""
        return []

    def abort(self) -> None:
        """Remove every temp file; final names are never touched."""

"""The contract between the explain driver and whoever runs the scenes."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from segxai_cli.explain.options import ExplainOptions
from segxai_cli.explain.results import SceneResult, attempt  # noqa: F401  (attempt: re-exported)
from segxai_cli.raster.source import RasterSource

log = logging.getLogger("segxai")

# progress(index, count, scene name, windows, megapixels) when a scene starts -> advance(n windows)
Progress = Callable[[int, int, str, int, float], Callable[[int], None]]


@dataclass(frozen=True)
class RunPlan:
    """Everything a worker needs to explain scenes into ``outdir`` (picklable when ``model`` is a path)."""

    model: Any  # None (bundled), a checkpoint path, or (module, ModelInfo)
    options: ExplainOptions  # resolved (not yet bound to the model)
    outdir: Path
    overwrite: bool = False
    skip_existing: bool = False
    keep_going: bool = True

    def explainer(self, progress: Optional[Progress] = None, device: Optional[str] = None):
        """Load the model once and bind the options: a ready :class:`~segxai_cli.explain.scene.Explainer`."""
        from segxai_cli.device import resolve_device
        from segxai_cli.explain.options import bind_options
        from segxai_cli.explain.scene import Explainer
        from segxai_cli.model.checkpoint import load_model
        from segxai_cli.model.families import as_adapter

        dev = resolve_device(device or self.options.device)
        net, info = load_model(self.model, dev)
        bound = bind_options(self.options, info, net, str(dev))
        return Explainer(as_adapter(net), info, bound, dev, progress)

    def scene(self, explainer, source: RasterSource, position: tuple[int, int] = (1, 1)) -> SceneResult:
        """One scene; a failure becomes a logged "failed" result (or raises without ``keep_going``)."""
        return attempt(source, self.keep_going, explainer.scene, source, self.outdir, overwrite=self.overwrite,
                       skip_existing=self.skip_existing, position=position)


class Executor:
    """Runs the scenes of a plan; yields their results as they finish (any order)."""

    name = "executor"

    def run(self, plan: RunPlan, sources: Sequence[RasterSource]) -> Iterator[SceneResult]:  # pragma: no cover
        raise NotImplementedError

    @property
    def bound_options(self) -> Optional[ExplainOptions]:
        """The options as bound to the model, once known (for the run summary)."""
        return None

    @property
    def model_record(self) -> Optional[dict[str, Any]]:
        return None


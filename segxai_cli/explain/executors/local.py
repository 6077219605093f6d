"""Scenes one after the other in this process, with one model load."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Optional

from segxai_cli.explain.executors.base import Executor, Progress, RunPlan
from segxai_cli.explain.options import ExplainOptions
from segxai_cli.explain.results import SceneResult
from segxai_cli.raster.source import RasterSource


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, progress: Optional[Progress] = None) -> None:
        self.progress = progress
        self.explainer = None

    def run(self, plan: RunPlan, sources: Sequence[RasterSource]) -> Iterator[SceneResult]:
        self.explainer = plan.explainer(self.progress)
        for i, source in enumerate(sources, 1):
            yield plan.scene(self.explainer, source, (i, len(sources)))

    @property
    def bound_options(self) -> Optional[ExplainOptions]:
        return self.explainer.opts if self.explainer else None

    @property
    def model_record(self) -> Optional[dict[str, Any]]:
        return self.explainer.model_record if self.explainer else None

"""Who runs the scenes of an explain run: this process (default), or others.

An executor receives a :class:`~segxai_cli.explain.executors.base.RunPlan` — everything needed to
explain a scene, picklable — and the scenes, and yields one
:class:`~segxai_cli.explain.results.SceneResult` per scene as they finish. The driver
(:mod:`segxai_cli.explain.run`) does everything else: inputs, checks, the run summary.

Adding an executor = one file with a :class:`~segxai_cli.explain.executors.base.Executor` subclass
and one line in :data:`EXECUTORS`.
"""

from __future__ import annotations

from segxai_cli.explain.executors.base import Executor, RunPlan
from segxai_cli.explain.executors.local import LocalExecutor

EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
}

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RunPlan"]

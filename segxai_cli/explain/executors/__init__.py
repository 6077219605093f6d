"""Who runs the scenes of an explain run: this process (default), or others.

An executor receives a :class:`~segxai_cli.explain.executors.base.RunPlan` — everything needed to
explain a scene, picklable — and the scenes, and yields one
:class:`~segxai_cli.explain.results.SceneResult` per scene as they finish. The driver
(:mod:`segxai_cli.explain.run`) does everything else: inputs, checks, the run summary.

Adding an executor = one file with a :class:`~segxai_cli.explain.executors.base.Executor` subclass
and one line in :data:`EXECUTORS`. Executors that use workers build on
:class:`~segxai_cli.explain.executors.pool.PoolExecutor` (scenes, and blocks of split scenes, as tasks).
"""

from __future__ import annotations

from typing import Optional, Union

from segxai_cli.errors import UsageError
from segxai_cli.explain.executors.base import Executor, Progress, RunPlan
from segxai_cli.explain.executors.local import LocalExecutor
from segxai_cli.explain.executors.processes import ProcessExecutor
from segxai_cli.explain.executors.ray import RayExecutor

EXECUTORS: dict[str, type[Executor]] = {
    "local": LocalExecutor,
    "processes": ProcessExecutor,
    "ray": RayExecutor,
}


def choose_executor(ray: Optional[str] = None, devices: Union[str, list, None] = None, workers: Optional[int] = None,
                    split: Union[int, str, None] = None, progress: Optional[Progress] = None) -> Executor:
    """The executor for ``--ray``, ``--devices``, ``--workers`` and ``--split`` (checked here, before
    anything heavy is imported or any worker started)."""
    split = parse_split(split)
    if ray is not None:
        return RayExecutor(ray, devices, workers, progress, split)
    if devices is not None or workers is not None:
        return ProcessExecutor(devices, workers, progress, split)
    if split not in (None, 1):
        raise UsageError("--split cuts a scene across workers: give --workers N, --devices or --ray too")
    return LocalExecutor(progress)


def parse_split(value: Union[int, str, None]) -> Union[int, str, None]:
    """``--split N`` (blocks per scene) or ``auto`` (every worker on scenes of 400+ megapixels)."""
    if value is None or str(value).strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        n = int(value)
    except ValueError:
        raise UsageError(f"--split {value!r}: expected a number of blocks per scene, or auto") from None
    if n < 1:
        raise UsageError(f"--split {value}: must be at least 1")
    return n


__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "ProcessExecutor", "RayExecutor", "RunPlan", "choose_executor"]

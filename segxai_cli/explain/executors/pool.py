"""Scenes as tasks on a pool of workers that each load the model once (the Ray and processes executors).

Each scene is one task; with ``split`` a scene becomes a plan task, one task per block of rows and
a finishing task (:mod:`segxai_cli.explain.split`), so that one huge mosaic uses every worker. A task
whose worker died is retried on the next free worker (:class:`~segxai_cli.workers.pool.WorkerPool`);
a retried scene redoes whatever the dead attempt left incomplete (as ``--skip-existing`` does).

Workers log nothing themselves: the driver logs each result's error and warnings as it arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Optional, Union

from segxai_cli.errors import UsageError
from segxai_cli.explain.executors.base import Executor, Progress, RunPlan, attempt
from segxai_cli.explain.options import ExplainOptions
from segxai_cli.explain.results import SceneResult
from segxai_cli.raster.source import RasterSource
from segxai_cli.workers.pool import Done, Task, WorkerPool

log = logging.getLogger("segxai")

SPLIT_AUTO_PIXELS = 20_000 * 20_000  # --split auto: scenes at least this large use every worker


@dataclass
class WorkerContext:
    """A worker's state: the run's plan and the loaded model with bound options."""

    plan: RunPlan
    explainer: Any


def setup(plan: RunPlan, device: str) -> WorkerContext:
    return WorkerContext(plan, plan.explainer(None, device))


def describe(ctx: WorkerContext) -> tuple[ExplainOptions, dict]:
    return ctx.explainer.opts, ctx.explainer.model_record


def _plan(ctx: WorkerContext, attempt_no: int) -> RunPlan:
    """A retry redoes what the dead attempt left incomplete (and finds what it completed)."""
    p = ctx.plan
    return p if attempt_no == 1 or p.overwrite else replace(p, skip_existing=True)


def scene_task(ctx: WorkerContext, source: RasterSource, position: tuple[int, int], attempt: int = 1) -> SceneResult:
    result = _plan(ctx, attempt).scene(ctx.explainer, source, position)
    if attempt > 1 and result.status == "skipped":
        result.status = "done"
        result.warnings.append(f"{source}: completed by an earlier attempt whose worker died")
    return result


def plan_task(ctx: WorkerContext, source: RasterSource, blocks: int, min_pixels: int, attempt: int = 1):
    from segxai_cli.explain.split import plan_split

    p = _plan(ctx, attempt)
    return _guarded(p, source, plan_split, ctx.explainer, source, p.outdir, blocks, min_pixels=min_pixels,
                    overwrite=p.overwrite, skip_existing=p.skip_existing)


def block_task(ctx: WorkerContext, split, index: int, attempt: int = 1):
    from segxai_cli.explain.split import run_block

    return _guarded(ctx.plan, split.source, run_block, ctx.explainer, split, index)


def finish_task(ctx: WorkerContext, split, blocks: list, attempt: int = 1):
    from segxai_cli.explain.split import finish_split

    return _guarded(ctx.plan, split.source, finish_split, ctx.explainer, split, blocks)


def _guarded(plan: RunPlan, source: RasterSource, fn: Callable, *args: Any, **kwargs: Any):
    """``fn``'s value, or a failed SceneResult (raised instead without ``keep_going``)."""
    return attempt(source, plan.keep_going, fn, *args, **kwargs)


@dataclass
class _Split:
    """A split scene in flight: its plan and the blocks back so far."""

    index: int
    plan: Any
    blocks: list = field(default_factory=list)
    failure: Optional[SceneResult] = None
    back: int = 0


class PoolExecutor(Executor):
    """Scenes (or blocks of scenes) on the workers of a pool made by ``make_pool``."""

    name = "pool"

    def __init__(self, make_pool: Callable[[], WorkerPool], progress: Optional[Progress] = None,
                 split: Union[int, str, None] = None) -> None:
        self.make_pool, self.progress, self.split = make_pool, progress, split
        self.info: Optional[tuple[ExplainOptions, dict]] = None
        self.ticks: dict[int, Callable[[int], None]] = {}

    @property
    def bound_options(self) -> Optional[ExplainOptions]:
        return self.info[0] if self.info else None

    @property
    def model_record(self) -> Optional[dict[str, Any]]:
        return self.info[1] if self.info else None

    def run(self, plan: RunPlan, sources: Sequence[RasterSource]) -> Iterator[SceneResult]:
        if self.split not in (None, 1) and plan.options.region.per_feature:
            raise UsageError("--split and --per-feature do not combine (features are small windows)")
        pool = self.make_pool()
        try:
            self.info = pool.start(partial(setup, plan), describe)[0]
            self.pool, self.sources, self.keep_going = pool, list(sources), plan.keep_going
            pool.on_dispatch = self._started
            blocks, min_pixels = self._split_for(len(pool.slots))
            for i, source in enumerate(sources, 1):
                if blocks > 1:
                    pool.submit(Task(("plan", i), plan_task, (source, blocks, min_pixels)))
                else:
                    pool.submit(Task(("scene", i), scene_task, (source, (i, len(sources)))))
            splits: dict[int, _Split] = {}
            for done in pool.results():
                yield from self._handle(done, splits)
        finally:
            pool.close()

    def _split_for(self, workers: int) -> tuple[int, int]:
        if self.split in (None, 1, "1", "off"):
            return 1, 0
        if self.split == "auto":
            return workers, SPLIT_AUTO_PIXELS
        return int(self.split), 0

    def _started(self, task: Task) -> None:
        kind, i = task.key[0], task.key[1]
        if kind in ("scene", "plan") and self.progress is not None and task.attempt == 1:
            self.ticks[i] = self.progress(i, len(self.sources), self.sources[i - 1].name, 1, 0.0)

    def _handle(self, done: Done, splits: dict[int, _Split]) -> Iterator[SceneResult]:
        kind, i = done.task.key[0], done.task.key[1]
        source = self.sources[i - 1]
        value = self._failure(source, done) if done.error is not None else done.value
        if kind == "plan" and not isinstance(value, SceneResult):
            if len(value.blocks) == 1:
                self.pool.submit(Task(("scene", i), scene_task, (source, (i, len(self.sources)))))
                return
            splits[i] = _Split(i, value)
            for j in range(len(value.blocks)):
                self.pool.submit(Task(("block", i, j), block_task, (value, j)))
            return
        if kind == "block":
            yield from self._block(splits[i], value)
            return
        yield self._finished(i, value)

    def _block(self, split: _Split, value: Any) -> Iterator[SceneResult]:
        from segxai_cli.explain.split import discard

        split.back += 1
        if isinstance(value, SceneResult):
            split.failure = split.failure or value
        else:
            split.blocks.append(value)
        if split.back < len(split.plan.blocks):
            return
        if split.failure is not None:
            discard(split.blocks)
            yield self._finished(split.index, split.failure)
        else:
            self.pool.submit(Task(("finish", split.index), finish_task, (split.plan, split.blocks)))

    def _failure(self, source: RasterSource, done: Done) -> SceneResult:
        """A task that raised (or lost its worker every time) → the scene's failed result."""
        if not self.keep_going:
            raise done.error
        msg = str(done.error)
        if str(source) not in msg:
            msg = f"{source}: {msg}"
        return SceneResult(source, "failed", error=msg)

    def _finished(self, i: int, result: SceneResult) -> SceneResult:
        if self.pool.remote:  # the worker's own log lines went nowhere
            if result.error:
                log.error("%s", result.error)
            for w in result.warnings:
                log.warning("%s", w)
            if result.status == "done":
                log.info("%s: done in %.1f s", result.input, result.seconds)
        tick = self.ticks.pop(i, None)
        if tick is not None:
            tick(1)
        return result

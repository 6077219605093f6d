"""Many scenes with one model load: the Python API behind ``segxai explain`` (the driver).

The order matters for users: every check that needs no model (options, shard, output folder,
inputs, existing outputs) runs first and fails in well under a second — torch, rasterio and the
model are imported only once there is work to do. The scenes themselves are run by an executor
(:mod:`segxai_cli.explain.executors`: this process by default); the driver writes the run summary.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional, Union

from segxai_cli.errors import InputError, OutputError, SegxaiError, UsageError
from segxai_cli.explain.executors import Executor, LocalExecutor, RunPlan
from segxai_cli.explain.destination import Destination
from segxai_cli.explain.executors.base import Progress, attempt
from segxai_cli.explain.options import ExplainOptions, resolve_options
from segxai_cli.explain.records import write_run_summary
from segxai_cli.explain.results import RECORD_SUFFIX, OutputPaths, RunResult, SceneResult
from segxai_cli.options import parse_shard
from segxai_cli.raster.inputs import expand_paths
from segxai_cli.raster.source import RasterSource

log = logging.getLogger("segxai")

ModelArg = Union[None, str, Path, tuple]
SUMMARY_EVERY_S = 60.0  # the manifest and CSV are rebuilt this often while scenes finish, and at the end


def explain_scenes(
    inputs: Union[str, Path, Iterable[Union[str, Path, RasterSource]]],
    outdir: Union[str, Path],
    model: ModelArg = None,
    *,
    options: Optional[ExplainOptions] = None,
    shard: Union[str, tuple, None] = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    progress: Optional[Progress] = None,
    executor: Optional[Executor] = None,
    keep_going: bool = True,
    **kwargs: Any,
) -> RunResult:
    """Explain many scenes (files, folders, globs, URLs, ``s3://``, GDAL paths, STAC items) with one model load.

    Options are given either as keyword arguments (``methods``, ``layer``, ``target_class``,
    ``bands``, ``tile_size``, ``overlap``, ``normalize``, ``use_probs``, ``batch_size``, ``device``,
    ``autocast``, ``region_mask``, ``vector``, ``vector_layer``, ``bbox``, ``compress``: see
    :func:`~segxai_cli.explain.options.resolve_options`) or already resolved as ``options``.
    ``model``: None (the bundled sample model), a checkpoint path, or ``(module, ModelInfo)``.
    ``outdir``: a folder, or ``s3://bucket/prefix`` (see :mod:`segxai_cli.explain.destination`).

    An input that fails (user error or not) is logged and recorded as failed; the others are still
    processed (check :attr:`RunResult.ok`). ``shard=(K, N)`` or ``"K/N"`` keeps every N-th input of
    the sorted list starting at the K-th (1-based), for job arrays or several machines (``"auto"``:
    the job array's, see :func:`~segxai_cli.options.scheduler_shard`). With ``keep_going=False`` the
    first failure raises instead. ``executor``: where the scenes run (default: this process; see
    :func:`~segxai_cli.explain.executors.choose_executor` for workers and Ray).
    """
    t0 = time.time()
    if overwrite and skip_existing:
        raise UsageError("use either --overwrite or --skip-existing, not both")
    if options is not None and kwargs:
        raise TypeError(f"give options either resolved or as keywords, not both: {', '.join(kwargs)}")
    opts = options if options is not None else resolve_options(**kwargs)
    shard_t = parse_shard(shard)
    dest = Destination.of(outdir).prepare()
    outdir = dest.uri if dest.remote else dest.folder
    inputs = [inputs] if isinstance(inputs, (str, Path, RasterSource)) else list(inputs)
    todo, results = _select_inputs(inputs, shard_t, keep_going, opts)
    checked = []
    for source in todo:
        failure = attempt(source, keep_going, _precheck, source, dest, overwrite, skip_existing)
        if failure is None:
            checked.append(source)
        else:
            results.append(failure)
    executor = executor or LocalExecutor(progress)
    plan = RunPlan(model, opts, outdir, overwrite, skip_existing, keep_going)

    def summary():
        return write_run_summary(dest.folder, results, executor.bound_options or opts, executor.model_record, t0,
                                 shard_t, [str(RasterSource.of(i)) for i in inputs])

    if checked:
        last = time.monotonic()
        for r in executor.run(plan, checked):
            results.extend(r.parts or [r])  # a per-feature input counts as its features
            if time.monotonic() - last >= SUMMARY_EVERY_S:  # a killed driver's run resumes with --skip-existing
                with contextlib.suppress(SegxaiError):  # the final summary reports errors
                    summary()
                last = time.monotonic()
    run = RunResult(results, outdir, seconds=time.time() - t0)
    try:
        dest.pull_records(RECORD_SUFFIX)
        run.manifest, run.csv = summary()
        if dest.remote and run.manifest:
            dest.publish(run_files(dest.folder))
            run.manifest, run.csv = dest.location(run.manifest), dest.location(run.csv)
    except SegxaiError as exc:
        log.error("%s", exc)
        run.scenes.append(SceneResult(RasterSource.of(str(outdir)), "failed", error=str(exc)))
    finally:
        if dest.remote:
            dest.cleanup()
    run.seconds = time.time() - t0
    return run


def explain_scene(input: Union[str, Path, RasterSource], outdir: Union[str, Path], model: ModelArg = None,
                  **kwargs: Any) -> SceneResult:
    """Explain one scene (see :func:`explain_scenes`); a user error raises instead of being recorded."""
    return explain_scenes([input], outdir, model, keep_going=False, **kwargs).scenes[0]


def _select_inputs(inputs: list, shard: Optional[tuple[int, int]], keep_going: bool,
                   opts: ExplainOptions) -> tuple[list[RasterSource], list[SceneResult]]:
    """Expand inputs; two inputs with the same name would write the same outputs: the first (sorted) wins."""
    sources, problems = expand_paths(inputs, assets=opts.assets, bands=opts.bands)
    if not sources and not problems:
        raise UsageError("no inputs given")
    if problems and not keep_going:
        raise InputError(f"{problems[0][0]}: {problems[0][1]}")
    results = [SceneResult(RasterSource.of(spec), "failed", error=f"{spec}: {reason}") for spec, reason in problems]
    seen: dict[str, RasterSource] = {}
    todo: list[RasterSource] = []
    for s in sources:
        if s.stem in seen:
            results.append(SceneResult(s, "failed", error=f"{s}: same file name as {seen[s.stem]} (outputs would collide)"))
        else:
            seen[s.stem] = s
            todo.append(s)
    if shard:
        k, n = shard
        todo = [s for i, s in enumerate(todo) if i % n == k - 1]
        results = [r for i, r in enumerate(results) if i % n == k - 1]
    for r in results:
        log.error("%s", r.error)
    return todo, results


def _precheck(source: RasterSource, dest: Destination, overwrite: bool, skip_existing: bool) -> None:
    """Failures known without the model: a missing input, outputs in the way."""
    if not source.exists():
        raise InputError(f"{source}: no such file")
    if not overwrite and not skip_existing:
        existing = [p for p in OutputPaths.for_stem(dest.folder, source.stem).all() if dest.exists(p)]
        if existing:
            raise OutputError(f"{dest.location(existing[0])}: exists (use --overwrite to replace, "
                              "or --skip-existing to skip complete scenes)")


def run_files(folder: Path) -> list[Path]:
    """The run-level files of a folder (manifest, CSV, STAC catalog) that exist."""
    from segxai_cli.explain.records import RUN_FILES

    return [folder / n for n in RUN_FILES if (folder / n).exists()]

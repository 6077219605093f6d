"""The faithfulness study: reduced inputs M1/M2/M3, metrics, reports.

    from segxai_cli.evaluation import evaluate_scenes
    rows = evaluate_scenes(["scene.tif"], masks="masks/", methods=["gradcam", "scorecam"],
                           layers=["decoder.last"], thresholds=[0.1, 0.2, 0.3])

Modules, in data-flow order: ``config`` (options, columns) → ``run`` (scenes → tiles or objects,
``objects``) → ``batch`` (one batch: CAMs, reduced inputs, rows) with ``reduce`` and ``metrics``, and
``sanity`` (parameter randomisation, with ``similarity``) → ``summary`` (aggregation, intervals from
``stats``) and ``compare`` (best method, paired tests) → ``report`` (files), ``tables`` (terminal), ``plots``.
"""

from __future__ import annotations

from segxai_cli._lazy import lazy_exports

_EXPORTS = {
    "COLUMNS": "segxai_cli.evaluation.config",
    "DEFAULT_LAYERS": "segxai_cli.evaluation.config",
    "DEFAULT_METHODS": "segxai_cli.evaluation.config",
    "MODES": "segxai_cli.evaluation.config",
    "SWEEP_THRESHOLDS": "segxai_cli.evaluation.config",
    "StudyConfig": "segxai_cli.evaluation.config",
    "TileTensors": "segxai_cli.evaluation.batch",
    "evaluate_batch": "segxai_cli.evaluation.batch",
    "randomized_copy": "segxai_cli.evaluation.batch",
    "StudyResult": "segxai_cli.evaluation.run",
    "evaluate_scenes": "segxai_cli.evaluation.run",
    "run_study": "segxai_cli.evaluation.run",
    "write_report": "segxai_cli.evaluation.report",
    "report_paths": "segxai_cli.evaluation.report",
    "binarize": "segxai_cli.evaluation.reduce",
    "fill_values": "segxai_cli.evaluation.reduce",
    "keep_mask": "segxai_cli.evaluation.reduce",
    "summarize": "segxai_cli.evaluation.summary",
    "summarize_scenes": "segxai_cli.evaluation.summary",
    "best_methods": "segxai_cli.evaluation.compare",
    "paired_comparisons": "segxai_cli.evaluation.compare",
    "mean_ci": "segxai_cli.evaluation.stats",
    "paired_test": "segxai_cli.evaluation.stats",
    "Randomizer": "segxai_cli.evaluation.sanity",
    "randomization_groups": "segxai_cli.evaluation.sanity",
    "reduced_inputs": "segxai_cli.evaluation.reduce",
}

__all__ = list(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)

"""The faithfulness study (seed 001): reduced inputs M1/M2/M3, metrics, reports.

    from segxai_cli.evaluation import evaluate_scenes
    rows = evaluate_scenes(["scene.tif"], masks="masks/", methods=["gradcam", "scorecam"],
                           layers=["decoder.last"], thresholds=[0.1, 0.2, 0.3])
"""

from segxai_cli.evaluation.reduce import MODES, binarize, fill_values, keep_mask, reduced_inputs
from segxai_cli.evaluation.study import (
    COLUMNS,
    DEFAULT_LAYERS,
    DEFAULT_METHODS,
    SWEEP_THRESHOLDS,
    StudyConfig,
    StudyResult,
    TileTensors,
    evaluate_batch,
    evaluate_scenes,
    randomized_copy,
    run_study,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_LAYERS",
    "DEFAULT_METHODS",
    "MODES",
    "SWEEP_THRESHOLDS",
    "StudyConfig",
    "StudyResult",
    "TileTensors",
    "binarize",
    "evaluate_batch",
    "evaluate_scenes",
    "fill_values",
    "keep_mask",
    "randomized_copy",
    "reduced_inputs",
    "run_study",
]

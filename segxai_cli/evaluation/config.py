"""The options of a faithfulness study and the columns of its tidy CSV.

Methods, layers and thresholds use the grammars every command shares (:mod:`segxai_cli.options`,
:mod:`segxai_cli.cam.registry`): ``all``/``all-gradient`` work here exactly as in explain, and
repeated ``--layer`` values are compared while ``a+b`` averages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from segxai_cli.cam.blackbox import BlackBoxOptions
from segxai_cli.cam.registry import resolve_methods
from segxai_cli.errors import UsageError
from segxai_cli.options import parse_layers, parse_thresholds

DEFAULT_METHODS: tuple[str, ...] = ("gradcam", "gradcam++", "xgradcam", "scorecam", "eigencam")
DEFAULT_LAYERS: tuple[str, ...] = ("decoder.last",)
DEFAULT_THRESHOLD = 0.5
SWEEP_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5)
DEFAULT_BUDGETS: tuple[float, ...] = (0.05, 0.1, 0.2)  # fixed pixel budgets: top 5/10/20 % of the counted pixels
DEFAULT_BOOTSTRAP = 2000  # resamples for the 95 % confidence intervals and the paired tests
DEFAULT_SANITY_THRESHOLD = 0.5  # the sanity check passes below this Spearman similarity (see docs/study.md)
DEFAULT_CURVE_STEPS = 10
DEFAULT_BLUR_SIGMA = 8.0
MODES: tuple[str, ...] = ("M1", "M2", "M3")
MODE_NAMES = {"M1": "background only", "M2": "highlighted only", "M3": "highlighted + target"}
FILLS: tuple[str, ...] = ("mean", "zero", "blur")
MASK_IGNORE_VALUE = 255
TIE_RULE = "random order of tied pixels, seeded by --seed (one permutation of the tile's pixels)"

# The tidy CSV's columns, in order (documented in docs/study.md).
COLUMNS: tuple[str, ...] = (
    "scene", "tile", "row_off", "col_off", "object", "method", "layer", "threshold", "budget", "mode",
    "target_source", "target_class", "empty_target", "empty_prediction", "n_valid", "n_target",
    "kept_fraction",
    "confidence_full", "confidence", "confidence_drop",
    "entropy_full", "entropy", "entropy_increase",
    "iou_full", "iou", "iou_change", "iou_pred",
    "dice_explained", "saliency_ratio", "pps", "ips",
    "deletion_auc", "insertion_auc", "sanity_spearman",
    "sign_rule", "sign_corr", "effective_channels",
)
METRIC_COLUMNS: tuple[str, ...] = COLUMNS[COLUMNS.index("kept_fraction"):]
# The sanity check's tidy CSV: one row per tile × method × layer × test × step.
SANITY_COLUMNS: tuple[str, ...] = ("scene", "tile", "object", "method", "layer", "test", "step", "randomized",
                                   "spearman", "ssim", "hog", "constant_map")


def parse_budgets(values: Any) -> list[float]:
    """``--budget`` values: fractions or percentages (``0.05``, ``5%``), comma lists; ``none`` = no budgets."""
    if values is None:
        return list(DEFAULT_BUDGETS)
    if isinstance(values, (str, float, int)):
        values = [values]
    out: list[float] = []
    for v in values:
        for part in str(v).replace(" ", "").split(","):
            if not part or part.lower() in ("none", "off"):
                continue
            try:
                b = float(part[:-1]) / 100 if part.endswith("%") else float(part)
            except ValueError:
                raise UsageError(f"--budget {v!r}: expected fractions in (0, 1] or percentages, e.g. 0.05,0.1 or 5%,10%") from None
            if not 0.0 < b <= 1.0:
                raise UsageError(f"--budget {part}: must be in (0, 1] (a fraction of the counted pixels) or (0, 100]%")
            out.append(round(b, 6))
    return sorted(set(out))


def check_modes(modes: Sequence[str]) -> list[str]:
    out = []
    for m in modes:
        key = str(m).strip().upper()
        if key not in MODES:
            raise UsageError(f"unknown evaluation mode {m!r}; valid: {', '.join(MODES)}")
        out.append(key)
    return list(dict.fromkeys(out))


@dataclass
class StudyConfig:
    """Options of one study run (everything that changes the numbers is recorded in the report)."""

    methods: Sequence[str] = DEFAULT_METHODS
    layers: Sequence[str] = DEFAULT_LAYERS
    thresholds: Sequence[float] = (DEFAULT_THRESHOLD,)
    modes: Sequence[str] = MODES
    target_class: int | str | None = None
    fill: str = "mean"
    blur_sigma: float = DEFAULT_BLUR_SIGMA
    curve_steps: int = DEFAULT_CURVE_STEPS
    sanity: bool = False
    seed: int = 0
    budgets: Sequence[float] = DEFAULT_BUDGETS
    bootstrap: int = DEFAULT_BOOTSTRAP
    sanity_threshold: float = DEFAULT_SANITY_THRESHOLD
    sanity_tiles: int | None = None  # the sanity check on the first N tiles of each scene only (None: all)
    vector: str | None = None  # per-object study: each feature of this vector file is a target
    vector_layer: str | None = None
    feature_id: str | None = None  # attribute naming the objects (default f<index>)
    batch_size: int = 4
    chunk: int = 16
    use_probs: bool = False
    score_chunk: int | None = None  # Score-CAM forwards per chunk (None: cache-sized on a CPU, 32 on a GPU)
    blackbox: BlackBoxOptions = field(default_factory=BlackBoxOptions)  # rise / occlusion (seed: ``seed``)

    def validate(self) -> "StudyConfig":
        """Check and normalise every field that needs no model (in place); returns self."""
        self.methods = resolve_methods(self.methods, default=DEFAULT_METHODS)
        self.layers = parse_layers(self.layers, default=DEFAULT_LAYERS[0])
        self.thresholds = sorted({round(t, 6) for t in parse_thresholds(list(map(str, self.thresholds))) or []})
        if not self.thresholds:
            raise UsageError("no threshold given")
        self.modes = check_modes(self.modes)
        if self.fill not in FILLS:
            raise UsageError(f"--fill {self.fill!r}: expected one of {', '.join(FILLS)}")
        if self.curve_steps < 0 or self.curve_steps == 1:
            raise UsageError(f"--curve-steps {self.curve_steps}: must be 0 (no deletion/insertion curves) or >= 2")
        if self.batch_size < 1 or self.chunk < 1:
            raise UsageError("--batch-size and --chunk must be at least 1")
        self.budgets = parse_budgets(None if self.budgets is None else [str(b) for b in self.budgets] or ["none"])
        if self.bootstrap < 0 or 0 < self.bootstrap < 100:
            raise UsageError(f"--bootstrap {self.bootstrap}: 0 (no intervals) or at least 100 resamples")
        if self.sanity_tiles is not None and self.sanity_tiles < 1:
            raise UsageError(f"--sanity-tiles {self.sanity_tiles}: must be at least 1")
        if not 0.0 < self.sanity_threshold < 1.0:
            raise UsageError(f"--sanity-threshold {self.sanity_threshold}: must be in (0, 1)")
        if self.feature_id is not None and self.vector is None:
            raise UsageError("--feature-id needs --vector")
        if self.vector_layer is not None and self.vector is None:
            raise UsageError("--vector-layer needs --vector")
        if self.blur_sigma < 0:
            raise UsageError(f"--blur-sigma {self.blur_sigma}: must be >= 0")
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "methods": list(self.methods), "layers": list(self.layers), "thresholds": list(self.thresholds),
            "modes": list(self.modes), "target_class": self.target_class, "fill": self.fill,
            "blur_sigma": self.blur_sigma if self.fill == "blur" else None, "curve_steps": self.curve_steps,
            "sanity": self.sanity, "seed": self.seed, "batch_size": self.batch_size, "chunk": self.chunk,
            "use_probs": self.use_probs, "budgets": list(self.budgets), "bootstrap": self.bootstrap,
            "sanity_threshold": self.sanity_threshold if self.sanity else None,
            "sanity_tiles": self.sanity_tiles if self.sanity else None, "tie_rule": TIE_RULE,
            "vector": self.vector, "vector_layer": self.vector_layer, "feature_id": self.feature_id,
            **self.blackbox.record(self.methods),
        }

    def method_opts(self) -> dict[str, Any]:
        """explain_batch options: Score-CAM's chunk, and the model-agnostic methods' (seeded by ``seed``)."""
        return {**self.blackbox.opts(), "rise_seed": int(self.seed), "score_chunk": self.score_chunk}

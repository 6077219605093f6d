"""Training segmentation models on scene/mask GeoTIFF pairs (``segxai train``)."""

from segxai_cli.training.loop import TrainResult, train_model
from segxai_cli.training.sampler import IGNORE_INDEX, WindowSampler, match_pairs, validate_pairs

__all__ = ["IGNORE_INDEX", "TrainResult", "WindowSampler", "match_pairs", "train_model", "validate_pairs"]

"""Training segmentation models on scene/mask GeoTIFF pairs (``segxai train``).

Modules: ``recipe`` (the settings) → ``sampler`` (pairs, validation cells, random windows) →
``losses`` (objective and IoU) → ``loop`` (:func:`~segxai_cli.training.loop.train_model`).
"""

"""The files a scene produces, one class per output kind, and the kinds a run produces.

A scene output kind (:class:`SceneOutput`) names its final files, is opened before the pipeline
runs, receives every finished strip while it runs, is *finalized* (converted and checked, still
under temp names) after the last strip, and *committed* (renamed) only once every kind of the scene
is finalized; :meth:`~SceneOutput.abort` removes its temp files. The scene record (``records.py``) is
written after every kind has committed: its presence means the scene is complete.

Adding an output kind = one file in this package with a :class:`SceneOutput` subclass and one line
in :data:`SCENE_OUTPUTS`. Files built from all scenes of a folder (the QGIS project) are run
output kinds: :mod:`segxai_cli.explain.run_outputs`.
"""

from __future__ import annotations

from segxai_cli.explain.outputs.base import SceneContext, SceneOutput
from segxai_cli.explain.outputs.prediction import PredictionOutput
from segxai_cli.explain.outputs.quicklook import QuicklookOutput
from segxai_cli.explain.outputs.saliency import SaliencyOutput
from segxai_cli.explain.outputs.stac_item import StacItemOutput

# Finalized and committed in this order; the record comes after all of them.
SCENE_OUTPUTS: tuple[type[SceneOutput], ...] = (
    PredictionOutput,
    SaliencyOutput,
    QuicklookOutput,  # renders from the finalized COGs
    StacItemOutput,  # describes the rasters above: finalized after them
)

__all__ = ["SCENE_OUTPUTS", "PredictionOutput", "QuicklookOutput", "SaliencyOutput", "SceneContext", "SceneOutput",
           "StacItemOutput"]

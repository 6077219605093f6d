"""Every CAM method by name: its family, the file that computes it, and one line about it.

This module imports nothing heavy, so ``--help``, option checking and docs can list and validate
method names without loading torch. Adding a method = one file in ``segxai_cli/cam/methods/`` with a
``compute`` function and one :class:`MethodSpec` line below. The family fixes how ``compute`` is
called by the engine:

- ``gradient``: ``compute(A, g, **opts) -> (B, h, w)`` — a pure function of the activations
  A (B, K, h, w) and the gradients g = dy/dA of the shared backward;
- ``perturbation``, ``activation``: ``compute(ctx, i) -> (B, h, w)`` with the shared
  :class:`~segxai_cli.cam.context.CamContext` and the layer index ``i``;
- ``model-agnostic``: ``compute(ctx) -> (B, H, W)`` at the input's resolution — no layer, no hooks,
  no gradients: they only run the model on perturbed inputs, so they work on any model, bare
  TorchScript and ONNX files included (options: :mod:`segxai_cli.cam.blackbox`).

One grammar everywhere (explain, evaluate, threshold-sweep, the Python API): names, comma lists or
repeated options, and the groups ``all`` and ``all-<family>`` (e.g. ``all-gradient``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union

from segxai_cli.errors import UsageError

FAMILIES = ("gradient", "perturbation", "activation", "model-agnostic")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str
    module: str  # file in segxai_cli/cam/methods/
    summary: str

    @property
    def needs_gradients(self) -> bool:
        return self.family == "gradient"

    @property
    def needs_layer(self) -> bool:
        return self.family != "model-agnostic"

    def load(self) -> Callable[..., Any]:
        return importlib.import_module(f"segxai_cli.cam.methods.{self.module}").compute


METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("gradcam", "gradient", "gradcam", "Seg-Grad-CAM: channel weights = mean gradient"),
    MethodSpec("gradcam++", "gradient", "gradcam_pp", "Grad-CAM++: higher-order gradient weights"),
    MethodSpec("xgradcam", "gradient", "xgradcam", "XGrad-CAM: activation-normalised gradient weights"),
    MethodSpec("hirescam", "gradient", "hirescam", "Seg-HiRes-Grad-CAM: gradient ⊙ activation, no pooling"),
    MethodSpec("xrescam", "gradient", "xrescam", "Seg-XRes-CAM: pooled gradient ⊙ activation"),
    MethodSpec("layercam", "gradient", "layercam", "LayerCAM: positive gradient ⊙ activation"),
    MethodSpec("scorecam", "perturbation", "scorecam", "Score-CAM: weights = scores of activation-masked inputs"),
    MethodSpec("ablationcam", "perturbation", "ablationcam", "Ablation-CAM: score drop when a channel is zeroed"),
    MethodSpec("eigencam", "activation", "eigencam", "Eigen-CAM: first principal component of the activations"),
    MethodSpec("rise", "model-agnostic", "rise", "RISE: scores of randomly masked inputs, averaged over the masks"),
    MethodSpec("occlusion", "model-agnostic", "occlusion", "Occlusion: score drop when a sliding patch is set to the baseline"),
)}

DEFAULT_METHODS = ("gradcam",)


def names(family: str | None = None) -> tuple[str, ...]:
    return tuple(n for n, m in METHODS.items() if family is None or m.family == family)


def groups() -> dict[str, tuple[str, ...]]:
    """``all`` and ``all-<family>`` → method names."""
    out = {"all": names()}
    out.update({f"all-{f}": names(f) for f in FAMILIES})
    return out


def grammar() -> str:
    """The accepted names, for help texts and errors."""
    return ", ".join(METHODS) + "; groups: " + ", ".join(groups())


def resolve_methods(spec: Union[str, Iterable[str], None], default: Iterable[str] = DEFAULT_METHODS) -> list[str]:
    """``["gradcam", "hirescam"]``, ``"gradcam,hirescam"``, ``"all"``, ``"all-gradient"`` → names."""
    if spec is None:
        spec = list(default)
    if isinstance(spec, str):
        spec = [spec]
    out: list[str] = []
    grp = groups()
    for item in spec:
        for m in str(item).split(","):
            m = m.strip().lower()
            if not m:
                continue
            if m in grp:
                out.extend(grp[m])
            elif m in METHODS:
                out.append(m)
            else:
                raise UsageError(f"unknown method {m!r}; valid: {grammar()}")
    if not out:
        raise UsageError(f"no method given; valid: {grammar()}")
    return list(dict.fromkeys(out))


def layer_free(methods: Iterable[str]) -> bool:
    """True when none of ``methods`` reads a layer (only model-agnostic ones)."""
    return not any(METHODS[m].needs_layer for m in methods)


def method_fn(name: str) -> Callable[..., Any]:
    """The ``compute`` function of a method (imports its file)."""
    if name not in METHODS:
        raise UsageError(f"unknown method {name!r}; valid: {grammar()}")
    return METHODS[name].load()

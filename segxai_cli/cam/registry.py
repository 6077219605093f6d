"""Every CAM method by name: its family, the file that computes it, and one line about it.

This module imports nothing heavy, so ``--help``, option checking and docs can list and validate
method names without loading torch. Adding a method = one file in ``segxai_cli/cam/methods/`` with a
``compute`` function and one :class:`MethodSpec` line below. The family fixes how ``compute`` is
called by the engine:

- ``gradient``: ``compute(A, g, **opts) -> (B, h, w)`` — a pure function of the activations
  A (B, K, h, w) and the gradients g = dy/dA of the shared backward;
- ``backprop`` (runs its own backward: second order, or down to the input), ``perturbation``
  (extra forwards), ``activation`` (activations only; may read the shared gradients for a sign,
  ``grads=True``), ``baseline``: ``compute(ctx, i) -> (B, h, w)`` with the shared
  :class:`~segxai_cli.cam.context.CamContext` and the layer index ``i``.
- ``model-agnostic``: ``compute(ctx) -> (B, H, W)`` at the input's resolution — no layer, no hooks,
  no gradients: they only run the model on perturbed inputs, so they work on any model, bare
  TorchScript and ONNX files included (options: :mod:`segxai_cli.cam.blackbox`).

``reference`` names the pytorch-grad-cam 1.5.7 class a method is parity-tested against
(``tests/test_cam_parity.py``); ``*-pgc`` variants reproduce it where our default deliberately
differs (docs/methods.md says where and why) and are reachable by name only.

One grammar everywhere (explain, evaluate, threshold-sweep, the Python API): names, comma lists or
repeated options, and the groups ``all`` and ``all-<family>`` (e.g. ``all-gradient``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Optional, Union

from segxai_cli.errors import UsageError

FAMILIES = ("gradient", "backprop", "perturbation", "activation", "baseline", "model-agnostic")


@dataclass(frozen=True)
class MethodSpec:
    name: str
    family: str
    module: str  # file in segxai_cli/cam/methods/
    summary: str
    reference: str = ""  # the pytorch-grad-cam 1.5.7 class it is tested against ("" = none)
    grads: Optional[bool] = None  # needs the shared backward (default: the gradient family)
    listed: bool = True  # part of the ``all`` groups (reference-compatible variants are not)

    @property
    def needs_gradients(self) -> bool:
        return self.family == "gradient" if self.grads is None else self.grads

    @property
    def takes_context(self) -> bool:
        """``compute(ctx, i)`` rather than the gradient family's ``compute(A, g, **opts)``."""
        return self.family != "gradient"

    @property
    def needs_layer(self) -> bool:
        return self.family != "model-agnostic"

    def load(self) -> Callable[..., Any]:
        return importlib.import_module(f"segxai_cli.cam.methods.{self.module}").compute


_G, _B, _P, _A = "gradient", "backprop", "perturbation", "activation"
METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("gradcam", _G, "gradcam", "Seg-Grad-CAM: channel weights = mean gradient", "GradCAM"),
    MethodSpec("gradcam++", _G, "gradcam_pp", "Grad-CAM++: higher-order gradient weights", "GradCAMPlusPlus"),
    MethodSpec("xgradcam", _G, "xgradcam", "XGrad-CAM: activation-normalised gradient weights", "XGradCAM"),
    MethodSpec("hirescam", _G, "hirescam", "Seg-HiRes-Grad-CAM: gradient ⊙ activation, no pooling", "HiResCAM"),
    MethodSpec("gradcam-elementwise", _G, "gradcam_elementwise", "Grad-CAM element-wise: Σ relu(gradient ⊙ activation)",
               "GradCAMElementWise"),
    MethodSpec("xrescam", _G, "xrescam", "Seg-XRes-CAM: pooled gradient ⊙ activation"),
    MethodSpec("layercam", _G, "layercam", "LayerCAM: positive gradient ⊙ activation", "LayerCAM"),
    MethodSpec("segeigencam", _G, "segeigencam", "Seg-Eigen-CAM: first principal component of |gradient| ⊙ activation",
               "SegEigenCAM"),
    MethodSpec("eigengradcam", _G, "eigengradcam", "Eigen-Grad-CAM: first principal component of gradient ⊙ activation",
               "EigenGradCAM"),
    MethodSpec("shapleycam", _B, "shapleycam", "Shapley-CAM: weights = mean(gradient − ½ Hessian·activation)",
               "ShapleyCAM"),
    MethodSpec("fullgrad", _B, "fullgrad", "FullGrad: input-gradient ⊙ input + bias-gradients of every layer (no --layer)",
               "FullGrad"),
    MethodSpec("scorecam", _P, "scorecam", "Score-CAM: softmax of the region's mean score under activation masks"),
    MethodSpec("scorecam-pgc", _P, "scorecam_pgc", "Score-CAM as pytorch-grad-cam: softmax of the region's summed score",
               "ScoreCAM", listed=False),
    MethodSpec("ablationcam", _P, "ablationcam", "Ablation-CAM: relative score drop (y − y_k)/|y| when a channel is zeroed"),
    MethodSpec("ablationcam-pgc", _P, "ablationcam_pgc", "Ablation-CAM as pytorch-grad-cam: (y − y_k)/y",
               "AblationCAM", listed=False),
    MethodSpec("eigencam", _A, "eigencam", "Eigen-CAM: first principal component of the activations, signed by Grad-CAM",
               "EigenCAM", grads=True),
    MethodSpec("kpcacam", _A, "kpcacam", "KPCA-CAM: first kernel principal component (sigmoid kernel), signed by Grad-CAM",
               "KPCA_CAM", grads=True),
    MethodSpec("fem", _A, "fem", "FEM: channels weighted by their share of positions above mean + 2 std", "FEM"),
    MethodSpec("randomcam", "baseline", "randomcam", "Random-CAM: fixed random channel weights in [-1, 1] (the floor)",
               "RandomCAM"),
    MethodSpec("rise", "model-agnostic", "rise", "RISE: scores of randomly masked inputs, averaged over the masks"),
    MethodSpec("occlusion", "model-agnostic", "occlusion", "Occlusion: score drop when a sliding patch is set to the baseline"),
)}

DEFAULT_METHODS = ("gradcam",)


def names(family: str | None = None) -> tuple[str, ...]:
    """Listed method names (of one family): the reference-compatible variants are left out."""
    return tuple(n for n, m in METHODS.items() if m.listed and (family is None or m.family == family))


def groups() -> dict[str, tuple[str, ...]]:
    """``all`` and ``all-<family>`` → method names (``*-pgc`` variants only by name)."""
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

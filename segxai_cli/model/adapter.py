"""The model adapter: the one place that knows how to run a model and read its layers.

Everything downstream (the CAM engine, the scene pipeline, the evaluation, training) talks to a
model through a :class:`ModelAdapter`, never to the raw output of ``model(x)``. An adapter answers:

- ``logits(output, size)`` — full-resolution logits (B, L, H, W) from whatever the model returns
  (a tensor, a tuple with an aux head, torchvision's ``{"out": …}``, a Hugging Face output object),
  upsampled bilinearly when the head works at a lower resolution (SegFormer's ¼);
- ``aliases()`` — friendly layer names (``bottleneck``, ``encoder.N``, ``decoder.N``,
  ``decoder.last``) → module paths;
- ``activations(t)`` — a layer output as (B, C, h, w) feature maps (token models reshape here);
- ``suffix(ref)`` — optionally, a fast way to re-run only the network after a layer (Ablation-CAM);
- ``stride`` — the factor a tile size must be a multiple of.

A model family is one file defining a subclass (``model/smp.py``…) plus one line in
``model/families.py``; :class:`ModelAdapter` itself is the generic fallback for any ``nn.Module``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo


@dataclass(frozen=True)
class LayerRef:
    """A resolved target layer: the module to hook and, for list outputs, which element."""

    name: str
    module: nn.Module
    index: Optional[int] = None  # element of a list/tuple output (encoder aliases)

    def select(self, out: Any) -> Any:
        return out if self.index is None else out[self.index]

    def replace(self, out: Any, new: torch.Tensor) -> Any:
        """``out`` with this layer's tensor replaced by ``new`` (same container type)."""
        if self.index is None:
            return new
        items = list(out)
        items[self.index] = new
        return type(out)(items) if isinstance(out, tuple) else items


class SuffixRunner:
    """Re-runs the network from a layer's output to the logits for modified activations.

    ``cache`` holds the outputs of :meth:`cache_modules` recorded during the main forward (e.g. the
    encoder's skip features). ``run(cache, a, b)`` takes activations ``a`` (n, K, h, w) belonging to
    images ``b`` (n,) of the batch and returns their raw model output.

    Ablation-CAM asks for ``head(features(cache, A, b, k, values))``: the defaults set the channel and
    call ``run`` (``head`` is then the identity). A family may split the head off (``head_linear``:
    the head is affine, so a score of its output is a dot product with a fixed gradient; ``last``:
    the layer feeds the head directly) and compute ``features`` faster (``model/unet_suffix.py``).
    """

    head_linear: bool = False
    last: bool = False

    def cache_modules(self) -> list[tuple[str, nn.Module]]:
        return []

    def run(self, cache: dict[str, Any], a: torch.Tensor, b: torch.Tensor) -> Any:  # pragma: no cover
        raise NotImplementedError

    def features(self, cache: dict[str, Any], A: torch.Tensor, b: torch.Tensor, k: torch.Tensor,
                 values: Optional[torch.Tensor] = None, fast: bool = True, image: Optional[int] = None) -> Any:
        """What enters ``head`` for image ``b[i]`` with channel ``k[i]`` of A set to ``values[i]`` (0)."""
        a = A[b].clone()
        a[torch.arange(b.numel(), device=A.device), k] = 0 if values is None else values.to(a.dtype)[:, None, None]
        return self.run(cache, a, b)

    def decode(self, cache: dict[str, Any], a: torch.Tensor, b: torch.Tensor) -> Any:
        """What enters ``head`` for unmodified activations ``a`` of images ``b``."""
        return self.run(cache, a, b)

    def head(self, x: Any) -> Any:
        return x

    def chunk_size(self, A: torch.Tensor) -> int:
        return 32


class ModelAdapter:
    """The generic adapter: any ``nn.Module`` whose output holds (B, L, h, w) logits."""

    family: ClassVar[str] = "generic"

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    # ---------------------------------------------------------------- which models
    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return True

    @classmethod
    def build(cls, info: "ModelInfo") -> nn.Module:  # pragma: no cover - families that can build
        from segxai_cli.errors import InputError

        raise InputError(f"cannot build a model of family {info.family!r} from a checkpoint")

    # ---------------------------------------------------------------- running
    def logits(self, output: Any, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """Full-resolution logits (B, L, H, W) from a model output."""
        out = output
        if isinstance(out, dict):
            out = out["out"] if "out" in out else next(iter(out.values()))
        elif not isinstance(out, torch.Tensor) and hasattr(out, "logits"):
            out = out.logits  # Hugging Face ModelOutput
        elif isinstance(out, (tuple, list)):
            out = out[0]  # (masks, labels) of smp's aux head, or (logits, ...)
        if not isinstance(out, torch.Tensor) or out.ndim != 4:
            from segxai_cli.errors import InputError

            raise InputError(
                f"the model returned {type(out).__name__}"
                + (f" of shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else "")
                + "; segxai needs (B, classes, H, W) logits"
            )
        if size is not None and tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
        return out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x`` at its resolution."""
        return self.logits(self.module(x), tuple(x.shape[-2:]))

    # ---------------------------------------------------------------- layers
    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        """Alias -> (module path, element index of a list output or None)."""
        return {}

    def resolve_alias(self, alias: str, path: str, index: Optional[int]) -> Optional[LayerRef]:
        """Turn an alias target into a LayerRef (families may redirect list elements)."""
        module = dict(self.module.named_modules())[path]
        return LayerRef(path if index is None else f"{path}[{index}]", module, index)

    def activations(self, t: torch.Tensor) -> torch.Tensor:
        """A captured layer output as (B, C, h, w) feature maps."""
        return t

    def suffix(self, ref: LayerRef) -> Optional[SuffixRunner]:
        """A runner for the network after ``ref`` when one is known (Ablation-CAM's fast path)."""
        return None

    @property
    def stride(self) -> int:
        """Tile sizes must be a multiple of this (1 when the model takes any size)."""
        return 1


AdapterFactory = Callable[[nn.Module], ModelAdapter]

"""The model adapter: the one place that knows how to run a model and read its layers.

Everything downstream (the CAM engine, the scene pipeline, the evaluation, training) talks to a
model through a :class:`ModelAdapter`, never to the raw output of ``model(x)``. An adapter answers:

- ``logits(output, size)`` — full-resolution logits (B, L, H, W) from whatever the model returns
  (a tensor, a tuple with an aux head, torchvision's ``{"out": …}``, a Hugging Face output object),
  upsampled bilinearly when the head works at a lower resolution (SegFormer's ¼);
- ``aliases()`` — friendly layer names (``bottleneck``, ``encoder.N``, ``decoder.N``,
  ``decoder.last``) → module paths;
- ``activations(t, size)`` — a layer output as (B, C, h, w) feature maps (token models: the
  class/register tokens are dropped and the patch grid reshaped, :mod:`segxai_cli.model.tokens`);
- ``suffix(ref)`` — optionally, a fast way to re-run only the network after a layer (Ablation-CAM);
- ``stride`` / ``tile_problem(tile)`` — which tile sizes the model takes;
- ``bare`` — the model is only a file (TorchScript, ONNX): no hooks, no gradients, so only the
  model-agnostic methods (RISE, occlusion) apply;
- ``restore(info, payload)`` / ``payload(module)`` — how a segxai checkpoint stores the model
  (a ``state_dict`` for the families that can build their architecture, the model bytes for bare files).

A model family is one file defining a subclass (``model/smp.py``…) plus one line in
``model/families.py``; :class:`ModelAdapter` itself is the generic fallback for any ``nn.Module``.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

_TILES: "weakref.WeakKeyDictionary[nn.Module, int]" = weakref.WeakKeyDictionary()


def remember_tile(module: nn.Module, tile: int) -> None:
    """Record a loaded model's native tile: dummy forwards (layer tracing) use it as their size."""
    _TILES[module] = int(tile)


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
    bare: ClassVar[bool] = False  # True: no named layers/hooks/gradients (TorchScript, ONNX)

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

    @classmethod
    def restore(cls, info: "ModelInfo", payload: dict[str, Any]) -> nn.Module:
        """The model of a segxai checkpoint: built from ``info``, weights from ``payload["state_dict"]``."""
        from segxai_cli.errors import InputError
        from segxai_cli.model.weights import load_weights

        state = payload.get("state_dict")
        if not isinstance(state, dict):
            raise InputError("checkpoint has no state_dict")
        model = cls.build(info)
        load_weights(model, state, info.label)
        return model

    @classmethod
    def payload(cls, module: nn.Module) -> dict[str, Any]:
        """What a segxai checkpoint stores for ``module`` (plain tensors only: weights_only-loadable)."""
        return {"state_dict": {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}}

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

    def activations(self, t: torch.Tensor, size: Optional[tuple[int, int]] = None) -> torch.Tensor:
        """A captured layer output as (B, C, h, w) feature maps; ``size`` is the input's (H, W).

        (B, N, C) token sequences (ViT blocks, SegFormer stages) are reshaped onto their patch grid,
        dropping class/register tokens (:func:`~segxai_cli.model.tokens.tokens_to_maps`).
        """
        if t.ndim == 3 and size is not None:
            from segxai_cli.model.tokens import tokens_to_maps

            return tokens_to_maps(t, size, prefix=self.prefix_tokens())
        return t

    def prefix_tokens(self) -> Optional[int]:
        """Class/register tokens before the patch tokens of token layers (None: inferred from the grid)."""
        return None

    def suffix(self, ref: LayerRef) -> Optional[SuffixRunner]:
        """A runner for the network after ``ref`` when one is known (Ablation-CAM's fast path)."""
        return None

    @property
    def stride(self) -> int:
        """Tile sizes must be a multiple of this (1 when the model takes any size)."""
        return 1

    @property
    def min_tile(self) -> int:
        """The smallest tile the model takes (pooling pyramids need several cells at the bottleneck)."""
        return self.stride

    def tile_problem(self, tile: int) -> Optional[str]:
        """Why ``tile`` does not fit this model, or None when it does."""
        if tile < self.min_tile or tile % self.stride:
            need = f"a multiple of {self.stride}" if self.stride > 1 else "any size"
            low = f" and at least {self.min_tile}" if self.min_tile > self.stride else ""
            return f"must be {need}{low} (the model downsamples by {self.stride})"
        return None

    def example_size(self) -> int:
        """Input size of dummy forwards: the loaded checkpoint's tile, else a size the model takes."""
        tile = _TILES.get(self.module)
        if tile is not None:
            return tile
        size = max(64, 2 * self.stride, self.min_tile)
        return -(-size // self.stride) * self.stride


AdapterFactory = Callable[[nn.Module], ModelAdapter]


def stage_aliases(encoder: list[str], decoder: list[str]) -> dict[str, tuple[str, Optional[int]]]:
    """The standard aliases from encoder stage ends (shallow → deep) and decoder stages (deep → out)."""
    out: dict[str, tuple[str, Optional[int]]] = {}
    if encoder:
        out["bottleneck"] = (encoder[-1], None)
        out.update({f"encoder.{i}": (p, None) for i, p in enumerate(encoder, 1)})
    if decoder:
        out.update({f"decoder.{i}": (p, None) for i, p in enumerate(decoder)})
        out["decoder.last"] = (decoder[-1], None)
    return out


def model_bytes(payload: dict[str, Any], family: str) -> bytes:
    """The model file kept in a checkpoint of a bare family (a uint8 tensor under ``model_bytes``)."""
    from segxai_cli.errors import InputError

    data = payload.get("model_bytes")
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise InputError(f"checkpoint of family {family} has no model_bytes")
    return data.numpy().tobytes()


def bytes_payload(data: bytes) -> dict[str, Any]:
    return {"model_bytes": torch.frombuffer(bytearray(data), dtype=torch.uint8)}

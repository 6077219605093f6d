"""The forward pass every method of a batch shares: activations, gradients, logits, region, score.

Why it is fast (performance.md): the target layers' outputs are turned into leaf tensors by a
forward hook while all parameters are frozen, so autograd records only the part of the network
*after* the target layer and ``torch.autograd.grad(y, A)`` back-propagates from the output to A
only — no weight gradients, no graph for the encoder prefix. The gradient methods all read the one
backward; perturbation methods re-run the model (or only its suffix) from what is recorded here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn

from segxai_cli.cam.targets import predict_region, target_scores
from segxai_cli.device import autocast as autocast_ctx
from segxai_cli.errors import UsageError
from segxai_cli.model.adapter import LayerRef, ModelAdapter


@contextlib.contextmanager
def frozen_eval(model: nn.Module) -> Iterator[None]:
    """Eval mode with parameters not requiring grad; both restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


@dataclass
class _Capture:
    """Forward hooks that make each target output a leaf (grad-enabled) and record it."""

    refs: Sequence[LayerRef]
    need_grad: bool
    leaves: list[Optional[torch.Tensor]] = field(default_factory=list)
    cache: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def hooks(self, cache_modules: Sequence[tuple[str, nn.Module]] = ()) -> Iterator[None]:
        self.leaves = [None] * len(self.refs)
        handles = [ref.module.register_forward_hook(self._hook(i, ref)) for i, ref in enumerate(self.refs)]
        for key, mod in cache_modules:  # extra outputs to keep (e.g. encoder features for suffix re-runs)
            handles.append(mod.register_forward_hook(self._record(key)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, i: int, ref: LayerRef):
        def hook(_mod, _inp, out):
            t = ref.select(out)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise UsageError(
                    f"layer {ref.name} outputs {type(t).__name__}, not a feature map; pick a module "
                    "returning a (B, K, h, w) tensor (see `segxai layers`; e.g. encoder.N, decoder.N)"
                )
            # Downstream of an earlier target it already requires grad: keep it in the graph so
            # the earlier layer's gradient still flows through it. Otherwise start the graph here.
            a = t if t.requires_grad else t.detach().requires_grad_(self.need_grad)
            self.leaves[i] = a
            # A clone flows on, so in-place ops after the layer can neither break autograd on the
            # leaf nor change the recorded activations.
            return ref.replace(out, a.clone())

        return hook

    def _record(self, key: str):
        def hook(_mod, _inp, out):
            self.cache[key] = out

        return hook


@dataclass
class CamContext:
    """Everything one forward produced, shared by all methods of a batch."""

    adapter: ModelAdapter
    images: torch.Tensor
    refs: Sequence[LayerRef]
    acts: list[torch.Tensor]  # (B, K, h, w) per layer, detached float32
    grads: list[torch.Tensor]  # dy/dA per layer (zeros when no gradient method asked)
    logits: torch.Tensor  # (B, L, H, W) float32
    region: torch.Tensor  # (B, H, W) bool
    y: torch.Tensor  # (B,) target score
    target_class: int
    use_probs: bool
    autocast: Any
    cache: dict[str, Any]
    opts: dict[str, Any]
    # Per-image diagnostics a method reports about the map it just made (name -> (B,) tensor), e.g.
    # Eigen-CAM's sign rule or Score-CAM's effective channels; the engine files them per method.
    notes: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def model(self) -> nn.Module:
        return self.adapter.module

    def amp(self) -> contextlib.AbstractContextManager:
        return autocast_ctx(self.images.device, self.autocast)

    def scores(self, output: Any, region: torch.Tensor, mean: bool = False) -> torch.Tensor:
        """Target scores (n,) of a raw model output for the images whose regions are given
        (``mean``: the region's mean score instead of its sum)."""
        logits = self.adapter.logits(output, tuple(self.images.shape[-2:]))
        return target_scores(logits, region, self.target_class, self.use_probs, mean=mean)

    def forward(self, x: torch.Tensor) -> Any:
        """The raw model output for ``x`` (no hooks, under the context's autocast)."""
        with self.amp():
            return self.model(x)


def shared_forward(
    adapter: ModelAdapter,
    images: torch.Tensor,
    refs: Sequence[LayerRef],
    *,
    target_class: int,
    region: Optional[torch.Tensor],
    valid: Optional[torch.Tensor],
    use_probs: bool,
    autocast: Any,
    need_grad: bool,
    cache_modules: Sequence[tuple[str, nn.Module]] = (),
    opts: Optional[dict[str, Any]] = None,
) -> CamContext:
    """One forward (+ one partial backward when ``need_grad``) → a :class:`CamContext`.

    Call under :func:`frozen_eval`. The region defaults to the predicted mask of the class and is
    always restricted to ``valid``.
    """
    cap = _Capture(refs, need_grad)
    with cap.hooks(cache_modules), torch.set_grad_enabled(need_grad), autocast_ctx(images.device, autocast):
        out = adapter.module(images)
    logits = adapter.logits(out, tuple(images.shape[-2:]))
    missing = [r.name for r, a in zip(refs, cap.leaves) if a is None]
    if missing:
        raise UsageError(f"layer(s) {', '.join(missing)} were not used in the model's forward pass")
    if region is None:
        region = predict_region(logits.detach(), target_class)
    if valid is not None:
        region = region & valid
    y = target_scores(logits, region, target_class, use_probs)
    grads: list[Optional[torch.Tensor]] = [None] * len(refs)
    if need_grad and y.requires_grad:
        grads = list(torch.autograd.grad(y.sum(), cap.leaves, allow_unused=True))
    size = tuple(images.shape[-2:])  # token layers are reshaped onto the input's patch grid
    acts = [adapter.activations(a.detach(), size).float() for a in cap.leaves]
    grads = [torch.zeros_like(a) if g is None else adapter.activations(g, size).float() for a, g in zip(acts, grads)]
    return CamContext(adapter, images, refs, acts, grads, logits.detach().float(), region, y.detach(),
                      target_class, use_probs, autocast, cap.cache, dict(opts or {}))


def layer_graph(ctx: CamContext, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-run the forward with layer ``i``'s output as a grad-enabled leaf: (leaf A, target scores y (B,)).

    For methods that need more than the shared first-order backward (a Hessian-vector product): the
    graph from A to y stays alive for ``torch.autograd.grad(..., create_graph=True)``.
    """
    cap = _Capture([ctx.refs[i]], need_grad=True)
    with cap.hooks(), torch.enable_grad(), ctx.amp():
        out = ctx.model(ctx.images)
    return cap.leaves[0], ctx.scores(out, ctx.region)

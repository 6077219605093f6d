"""The CAM engine: one forward + one partial backward per batch, then every requested method.

Why it is fast (performance.md): the target layers' outputs are turned into leaf tensors by a
forward hook while all parameters are frozen, so autograd records only the part of the network
*after* the target layer and ``torch.autograd.grad(y, A)`` back-propagates from the output to A
only -- no weight gradients, no graph for the encoder prefix. All gradient methods share that pair;
perturbation methods reuse the captured activations; nothing leaves the device.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from segxai_cli.cam import eigen, perturbation
from segxai_cli.cam.gradient import GRADIENT_REGISTRY
from segxai_cli.cam.post import aggregate, postprocess
from segxai_cli.errors import SegxaiError
from segxai_cli.model.layers import LayerRef, resolve_layer

GRADIENT_METHODS: tuple[str, ...] = tuple(GRADIENT_REGISTRY)
PERTURBATION_METHODS: tuple[str, ...] = ("scorecam", "ablationcam")
ACTIVATION_METHODS: tuple[str, ...] = ("eigencam",)
METHODS: tuple[str, ...] = GRADIENT_METHODS + PERTURBATION_METHODS + ACTIVATION_METHODS


class EmptyRegionWarning(UserWarning):
    """Some images of a batch had no target pixels; their maps are all zero (filter by category)."""


# ----------------------------------------------------------------------------- targets
def _check_class(n_out: int, target_class: int) -> None:
    valid = (0, 1) if n_out == 1 else tuple(range(n_out))
    if target_class not in valid:
        raise SegxaiError(
            f"target class {target_class} is not valid for a model with {n_out} output channel(s); "
            f"valid: {', '.join(map(str, valid))}"
        )


def predict_region(logits: torch.Tensor, target_class: int) -> torch.Tensor:
    """Predicted mask of ``target_class``: argmax over L, or sigmoid > 0.5 for one channel. (B,H,W) bool.

    For a binary (L = 1) model class 1 is the channel and class 0 its complement (background).
    """
    n_out = logits.shape[1]
    _check_class(n_out, target_class)
    if n_out == 1:
        fg = logits[:, 0] > 0
        return fg if target_class == 1 else ~fg
    return logits.argmax(1) == target_class


def _class_map(logits: torch.Tensor, target_class: int, use_probs: bool) -> torch.Tensor:
    """Per-pixel score of the target class (B,H,W): logit (or probability)."""
    n_out = logits.shape[1]
    _check_class(n_out, target_class)
    if n_out == 1:
        z = logits[:, 0] if target_class == 1 else -logits[:, 0]  # logit of the complement is -z
        return torch.sigmoid(z) if use_probs else z
    if use_probs:
        return torch.softmax(logits, 1)[:, target_class]
    return logits[:, target_class]


def target_scores(
    logits: torch.Tensor, region: torch.Tensor, target_class: int, use_probs: bool = False
) -> torch.Tensor:
    """y = sum over the region of the class logit (or probability), one per image: (B,)."""
    s = _class_map(logits.float(), target_class, use_probs)
    return (s * region.to(s.dtype)).sum((1, 2))


# ----------------------------------------------------------------------------- capture
def _autocast_ctx(device: torch.device, autocast: Any) -> contextlib.AbstractContextManager:
    """Resolve the ``autocast`` option (None/False, True, 'bf16', 'fp16' or a dtype)."""
    if autocast in (None, False):
        return contextlib.nullcontext()
    names = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
             "float16": torch.float16, "half": torch.float16}
    if autocast is True:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    elif isinstance(autocast, torch.dtype):
        dtype = autocast
    elif isinstance(autocast, str) and autocast.lower() in names:
        dtype = names[autocast.lower()]
    else:
        raise SegxaiError(f"autocast must be one of None, 'bf16', 'fp16'; got {autocast!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)


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


def _select(out: Any, index: Optional[int]) -> torch.Tensor:
    return out if index is None else out[index]


def _replace(out: Any, index: Optional[int], new: torch.Tensor) -> Any:
    if index is None:
        return new
    items = list(out)
    items[index] = new
    return type(out)(items) if isinstance(out, tuple) else items


@dataclass
class _Capture:
    """Forward hooks that make each target output a leaf A (grad-enabled) and record it."""

    refs: Sequence[LayerRef]
    need_grad: bool
    acts: list[Optional[torch.Tensor]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @contextlib.contextmanager
    def hooks(self, model: nn.Module, record: Sequence[tuple[str, nn.Module]] = ()) -> Iterator[None]:
        self.acts = [None] * len(self.refs)
        handles = [ref.module.register_forward_hook(self._hook(i, ref)) for i, ref in enumerate(self.refs)]
        for key, mod in record:  # extra outputs to cache (e.g. encoder features for suffix re-runs)
            handles.append(mod.register_forward_hook(self._record(key)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _hook(self, i: int, ref: LayerRef):
        def hook(_mod, _inp, out):
            t = _select(out, ref.index)
            if not isinstance(t, torch.Tensor) or not t.is_floating_point():
                raise SegxaiError(
                    f"layer {ref.name} outputs {type(t).__name__}, not a feature map; pick a module "
                    "returning a (B, K, h, w) tensor (see `segxai layers`; e.g. encoder.N, decoder.N)"
                )
            # Downstream of an earlier target it already requires grad: keep it in the graph so
            # the earlier layer's gradient still flows through it. Otherwise start the graph here.
            a = t if t.requires_grad else t.detach().requires_grad_(self.need_grad)
            self.acts[i] = a
            # A clone flows on, so in-place ops after the layer can neither break autograd on the
            # leaf nor change the recorded activations.
            return _replace(out, ref.index, a.clone())

        return hook

    def _record(self, key: str):
        def hook(_mod, _inp, out):
            self.extra[key] = out

        return hook


def _logits(out: Any) -> torch.Tensor:
    """Segmentation logits from a model output (tensor, or (masks, labels) like smp with aux head)."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    if isinstance(out, dict):
        out = out["out"]
    return out


@dataclass
class Pass:
    """Everything one forward produced, shared by all methods of a batch."""

    model: nn.Module
    images: torch.Tensor
    refs: Sequence[LayerRef]
    acts: list[torch.Tensor]
    logits: torch.Tensor
    region: torch.Tensor
    y: torch.Tensor
    target_class: int
    use_probs: bool
    autocast: Any
    extra: dict[str, Any]
    opts: dict[str, Any]

    def amp(self) -> contextlib.AbstractContextManager:
        return _autocast_ctx(self.images.device, self.autocast)

    def scores(self, logits: Any, region: torch.Tensor) -> torch.Tensor:
        return target_scores(_logits(logits), region, self.target_class, self.use_probs)


# ----------------------------------------------------------------------------- API
def _check_methods(methods: Union[str, Sequence[str]]) -> list[str]:
    methods = [methods] if isinstance(methods, str) else list(methods)
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise SegxaiError(
            f"unknown CAM method(s) {', '.join(map(repr, bad)) or '(none given)'}; "
            f"valid: {', '.join(METHODS)}"
        )
    return list(dict.fromkeys(methods))


def explain_batch(
    model: nn.Module,
    images: torch.Tensor,
    layer: Union[str, Sequence[str]],
    methods: Union[str, Sequence[str]] = ("gradcam",),
    target_class: int = 1,
    region: Optional[torch.Tensor] = None,
    normalize: bool = True,
    use_probs: bool = False,
    autocast: Any = None,
    batch_chunk: Optional[int] = None,
    valid: Optional[torch.Tensor] = None,
    return_logits: bool = False,
    **opts: Any,
) -> Union[dict[str, torch.Tensor], tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """CAM maps for a batch of tiles: method name -> float32 (B, H, W) on the images' device.

    ``layer``: a module path / alias or a list (maps are post-processed per layer, averaged and
    min-max normalised again). ``region``: bool (B, H, W) pixels whose score is explained; None =
    predicted mask of ``target_class``. ``normalize=False`` keeps ReLU + resize only (for stitching).
    Extra options: ``xres_pool`` (2), ``xres_mode`` ('avg'|'max'), ``score_chunk`` (32),
    ``ablation_chunk`` (32), ``ablation_suffix`` (True: re-run only the smp U-Net decoder suffix),
    ``ablation_linear`` (True: and skip the next block's first conv by linearity).
    ``autocast``: None, 'bf16' or 'fp16' (forward under torch.autocast; maps are float32).
    ``batch_chunk``: process the batch in slices of this many images (memory bound).
    ``valid``: bool (B, H, W) pixels that may be explained at all (not nodata, not padding); the
    region, given or predicted, is restricted to them.
    ``return_logits``: also return the model's logits of the shared forward, ``(maps, logits)``, so
    callers that need the prediction do not run the model twice.

    Host syncs: one per batch to decide whether to warn about empty regions, plus one per
    Score-CAM layer to find the non-constant channels; no per-image or per-channel ``.item()``.
    """
    methods = _check_methods(methods)
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers:
        raise SegxaiError("no target layer given")
    refs = [resolve_layer(model, name) for name in layers]
    if images.ndim != 4:
        raise SegxaiError(f"images must be (B, bands, H, W), got shape {tuple(images.shape)}")
    region = _pixel_mask(region, images, "region")
    valid = _pixel_mask(valid, images, "valid")
    args = dict(methods=methods, target_class=target_class, normalize=normalize,
                use_probs=use_probs, autocast=autocast, opts=opts)
    B = images.shape[0]
    step = B if batch_chunk is None or batch_chunk >= B else int(batch_chunk)
    parts = [
        _explain(model, images[i:i + step], refs,
                 region=None if region is None else region[i:i + step],
                 valid=None if valid is None else valid[i:i + step], **args)
        for i in range(0, B, step)
    ]
    if len(parts) == 1:
        maps, logits = parts[0]
    else:
        maps = {m: torch.cat([p[0][m] for p in parts]) for m in methods}
        logits = torch.cat([p[1] for p in parts])
    return (maps, logits) if return_logits else maps


def _pixel_mask(mask: Optional[torch.Tensor], images: torch.Tensor, name: str) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    mask = mask.to(device=images.device, dtype=torch.bool)
    if mask.shape != (images.shape[0], *images.shape[-2:]):
        raise SegxaiError(
            f"{name} must be (B, H, W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(mask.shape)}"
        )
    return mask


def _explain(model, images, refs, *, methods, target_class, region, valid, normalize, use_probs,
             autocast, opts) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    grad_methods = [m for m in methods if m in GRADIENT_REGISTRY]
    need_grad = bool(grad_methods)
    cap = _Capture(refs, need_grad)
    record = []
    if "ablationcam" in methods and opts.get("ablation_suffix", True):
        record = perturbation.suffix_records(model, refs)
    with frozen_eval(model):
        with cap.hooks(model, record), torch.set_grad_enabled(need_grad), _autocast_ctx(images.device, autocast):
            out = model(images)
        logits = _logits(out)
        missing = [r.name for r, a in zip(refs, cap.acts) if a is None]
        if missing:
            raise SegxaiError(f"layer(s) {', '.join(missing)} were not used in the model's forward pass")
        if region is None:
            region = predict_region(logits.detach(), target_class)
        if valid is not None:
            region = region & valid
        y = target_scores(logits, region, target_class, use_probs)
        grads: list[Optional[torch.Tensor]] = [None] * len(refs)
        if need_grad and y.requires_grad:
            grads = list(torch.autograd.grad(y.sum(), cap.acts, allow_unused=True))
        acts = [a.detach().float() for a in cap.acts]
        grads = [torch.zeros_like(a) if g is None else g.float() for a, g in zip(acts, grads)]
        logits = logits.detach()
        ps = Pass(model, images, refs, acts, logits.float(), region, y.detach(),
                  target_class, use_probs, autocast, cap.extra, opts)
        del out, cap

        empty = ~region.flatten(1).any(1)
        if bool(empty.any()):  # one host sync per batch, needed to warn
            warnings.warn(
                f"empty target region (class {target_class}) for {int(empty.sum())} image(s); "
                "their CAM maps are all zero",
                EmptyRegionWarning,
                stacklevel=4,
            )
        keep = (~empty).to(torch.float32)[:, None, None]
        size = tuple(images.shape[-2:])
        result: dict[str, torch.Tensor] = {}
        for m in methods:
            per_layer = []
            for i in range(len(refs)):
                raw = _raw_map(m, ps, i, grads[i])
                per_layer.append(postprocess(raw * keep, size, normalize))
            result[m] = aggregate(per_layer, normalize).to(torch.float32) * keep
    return result, logits


def _raw_map(method: str, ps: Pass, i: int, g: torch.Tensor) -> torch.Tensor:
    A = ps.acts[i]
    if A.ndim != 4:
        raise SegxaiError(f"layer {ps.refs[i].name} outputs shape {tuple(A.shape)}; need (B, K, h, w)")
    if method in GRADIENT_REGISTRY:
        return GRADIENT_REGISTRY[method](A, g, **ps.opts)
    if method == "scorecam":
        return perturbation.scorecam(ps, i)
    if method == "ablationcam":
        return perturbation.ablationcam(ps, i)
    if method == "eigencam":
        return eigen.eigencam(A, ps.region)
    raise AssertionError(method)

"""The CAM engine: one shared forward (+ one partial backward) per batch, then every requested method.

``explain_batch`` is the notebook API: tensors in, maps out, on the images' device. It resolves the
methods (:mod:`segxai_cli.cam.registry`) and layers (:mod:`segxai_cli.model.layers`), runs the
shared pass (:mod:`segxai_cli.cam.context`), calls each method's ``compute`` according to its
family, and post-processes (:mod:`segxai_cli.cam.post`).
"""

from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from segxai_cli.cam.context import CamContext, frozen_eval, shared_forward
from segxai_cli.cam.post import aggregate, minmax, postprocess
from segxai_cli.cam.registry import METHODS, resolve_methods
from segxai_cli.errors import UsageError
from segxai_cli.model.adapter import LayerRef, ModelAdapter
from segxai_cli.model.families import as_adapter
from segxai_cli.model.layers import resolve_layer


class EmptyRegionWarning(UserWarning):
    """Some images of a batch had no target pixels; their maps are all zero (filter by category)."""


def explain_batch(
    model: Union[nn.Module, ModelAdapter],
    images: torch.Tensor,
    layer: Union[str, Sequence[str], None] = None,
    methods: Union[str, Sequence[str]] = ("gradcam",),
    target_class: int = 1,
    region: Optional[torch.Tensor] = None,
    normalize: bool = True,
    use_probs: bool = False,
    autocast: Any = None,
    batch_chunk: Optional[int] = None,
    valid: Optional[torch.Tensor] = None,
    return_logits: bool = False,
    notes: Optional[dict[str, torch.Tensor]] = None,
    **opts: Any,
) -> Union[dict[str, torch.Tensor], tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """CAM maps for a batch of tiles: method name -> float32 (B, H, W) on the images' device.

    ``layer``: a module path / alias or a list (maps are post-processed per layer, averaged and
    min-max normalised again); not needed when every method is model-agnostic (``rise``,
    ``occlusion``: computed at the input's resolution, no layer, no gradients — the only methods
    of bare TorchScript/ONNX models; options ``rise_masks``, ``rise_cells``, ``rise_p``,
    ``rise_seed``, ``occlusion_window``, ``occlusion_stride``, ``baseline``, ``perturb_chunk``:
    :mod:`segxai_cli.cam.blackbox`). ``region``: bool (B, H, W) pixels whose score is explained; None =
    predicted mask of ``target_class``. ``normalize=False`` keeps ReLU + resize only (for stitching).
    Extra options: ``xres_pool`` (2), ``xres_mode`` ('avg'|'max'), ``score_chunk`` and
    ``ablation_chunk`` (default, like ``perturb_chunk``: 32 on a GPU, sized to the last-level cache
    on a CPU), ``ablation_suffix`` (True: re-run only the decoder suffix where the model family
    knows it), ``ablation_linear`` (True: and skip the next block's first conv by
    linearity). ``autocast``: None, 'bf16' or 'fp16' (forward under torch.autocast; maps are
    float32). ``batch_chunk``: process the batch in slices of this many images (memory bound).
    ``valid``: bool (B, H, W) pixels that may be explained at all (not nodata, not padding); the
    region, given or predicted, is restricted to them. ``return_logits``: also return the model's
    logits of the shared forward, ``(maps, logits)``, so callers that need the prediction do not
    run the model twice. ``notes``: a dict to fill with what methods report per image, as
    ``"<method>.<note>"`` -> (B, layers) tensors (e.g. ``eigencam.sign_rule``,
    ``scorecam.effective_channels``; docs/methods.md lists them).

    Host syncs: one per batch to decide whether to warn about empty regions, plus one per
    Score-CAM layer to find the non-constant channels; no per-image or per-channel ``.item()``.
    """
    methods = resolve_methods(methods)
    adapter = as_adapter(model)
    refs = layer_refs(adapter, layer, methods)
    if images.ndim != 4:
        raise UsageError(f"images must be (B, bands, H, W), got shape {tuple(images.shape)}")
    region = _pixel_mask(region, images, "region")
    valid = _pixel_mask(valid, images, "valid")
    B = images.shape[0]
    step = B if batch_chunk is None or batch_chunk >= B else int(batch_chunk)
    parts = [
        _explain(adapter, images[i:i + step], refs, methods, target_class,
                 region=None if region is None else region[i:i + step],
                 valid=None if valid is None else valid[i:i + step],
                 normalize=normalize, use_probs=use_probs, autocast=autocast, opts=opts)
        for i in range(0, B, step)
    ]
    maps = {m: torch.cat([p[0][m] for p in parts]) for m in methods}
    logits = torch.cat([p[1] for p in parts])
    if notes is not None:
        notes.update({k: torch.cat([p[2][k] for p in parts]) for k in parts[0][2]})
    return (maps, logits) if return_logits else maps


def layer_refs(model: Union[nn.Module, ModelAdapter], layer, methods: Sequence[str]) -> list[LayerRef]:
    """The target layers of the methods that read one (none for model-agnostic methods only).

    A bare model (TorchScript, ONNX) asked for a CAM method gets one error naming the methods that apply.
    """
    adapter = as_adapter(model)
    cams = [m for m in methods if METHODS[m].needs_layer]
    if not cams:
        return []
    if adapter.bare:
        free = ", ".join(n for n, s in METHODS.items() if not s.needs_layer)
        raise UsageError(f"{', '.join(cams)}: needs the model's layers, and a {adapter.family} model is a bare file "
                         f"without hooks or gradients; methods that apply: {free}")
    layers = [layer] if isinstance(layer, str) else list(layer or [])
    if not layers:
        raise UsageError("no target layer given")
    return [resolve_layer(adapter, name) for name in layers]


def _pixel_mask(mask: Optional[torch.Tensor], images: torch.Tensor, name: str) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    mask = mask.to(device=images.device, dtype=torch.bool)
    if mask.shape != (images.shape[0], *images.shape[-2:]):
        raise UsageError(f"{name} must be (B, H, W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(mask.shape)}")
    return mask


def _explain(adapter: ModelAdapter, images, refs, methods, target_class, *, region, valid, normalize,
             use_probs, autocast, opts) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, torch.Tensor]]:
    need_grad = any(METHODS[m].needs_gradients for m in methods)
    cache_modules = []
    if any(m.startswith("ablationcam") for m in methods) and opts.get("ablation_suffix", True):
        for ref in refs:
            suffix = adapter.suffix(ref)
            if suffix is not None:
                cache_modules += [cm for cm in suffix.cache_modules() if cm not in cache_modules]
    with frozen_eval(adapter.module):
        ctx = shared_forward(adapter, images, refs, target_class=target_class, region=region, valid=valid,
                             use_probs=use_probs, autocast=autocast, need_grad=need_grad,
                             cache_modules=cache_modules, opts=opts)
        empty = ~ctx.region.flatten(1).any(1)
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
        notes: dict[str, list[torch.Tensor]] = {}
        for m in methods:
            if not METHODS[m].needs_layer:  # full-resolution, signed: min-max only (no ReLU)
                raw = METHODS[m].load()(ctx).float() * keep
                result[m] = (minmax(raw) if normalize else raw) * keep
                continue
            per_layer = []
            for i in range(len(refs)):
                ctx.notes = {}
                per_layer.append(postprocess(_raw_map(m, ctx, i) * keep, size, normalize))
                for k, v in ctx.notes.items():
                    notes.setdefault(f"{m}.{k}", []).append(v.detach().float())
            result[m] = aggregate(per_layer, normalize).to(torch.float32) * keep
    return result, ctx.logits, {k: torch.stack(v, 1) for k, v in notes.items()}


def _raw_map(method: str, ctx: CamContext, i: int) -> torch.Tensor:
    A = ctx.acts[i]
    if A.ndim != 4:
        raise UsageError(f"layer {ctx.refs[i].name} outputs shape {tuple(A.shape)}; need (B, K, h, w)")
    spec = METHODS[method]
    fn = spec.load()
    if spec.takes_context:
        return fn(ctx, i)
    return fn(A, ctx.grads[i], region=ctx.region, notes=ctx.notes, **ctx.opts)

"""Target-layer names: dotted module paths plus friendly aliases for smp models.

A layer is named either by its dotted path from ``model.named_modules()`` (always works, any
``nn.Module``) or by an alias. Exact module paths win over aliases.

Aliases (smp models; ``.`` and ``-`` are interchangeable, negative indices count from the end):

==================  ===========================================================================
``bottleneck``      deepest encoder feature map (last element of ``model.encoder(x)``)
``encoder.N``       encoder feature map N (``model.encoder(x)[N]``; 1 = stride 2 ... depth)
``decoder.N``       decoder stage N, counted from the bottleneck towards the output:
                    Unet ``decoder.blocks.N``; UnetPlusPlus the top (full-resolution) path
                    ``decoder.blocks.x_0_N``; FPN ``decoder.p5/p4/p3/p2``; DeepLabV3+
                    ``decoder.aspp`` / ``decoder.block1`` / ``decoder.block2``
``decoder.last``    the last decoder stage (same as ``decoder.-1``)
==================  ===========================================================================

Encoder aliases select one element of the encoder's list output, so they work for every smp
encoder (resnet, efficientnet, mobilenet, timm) without knowing its internal module names.
"""

from __future__ import annotations

import difflib
import re
import weakref
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from torch import nn

from segxai_cli.errors import SegxaiError


@dataclass(frozen=True)
class LayerRef:
    """A resolved target layer: the module to hook and, for list outputs, which element."""

    name: str
    module: nn.Module
    index: Optional[int] = None  # element of a list/tuple output (encoder aliases)

    @property
    def path(self) -> str:
        """Dotted module path (plus ``[i]`` for a list element), for messages."""
        return self.name


class LayerInfo(NamedTuple):
    name: str
    type: str
    shape: str
    aliases: tuple[str, ...]


_ALIAS_RE = re.compile(r"^(encoder|decoder)[.\-](-?\d+|last)$")


def _decoder_stages(model: nn.Module) -> list[str]:
    """Dotted paths of the decoder stages of known smp decoders, bottleneck side first."""
    dec = getattr(model, "decoder", None)
    if dec is None:
        return []
    blocks = getattr(dec, "blocks", None)
    if isinstance(blocks, nn.ModuleList):  # Unet
        return [f"decoder.blocks.{i}" for i in range(len(blocks))]
    if isinstance(blocks, nn.ModuleDict):  # UnetPlusPlus: top row x_0_j
        top = sorted(
            (k for k in blocks.keys() if k.startswith("x_0_")), key=lambda k: int(k.split("_")[2])
        )
        return [f"decoder.blocks.{k}" for k in top]
    if all(hasattr(dec, p) for p in ("p5", "p4", "p3", "p2")):  # FPN
        return ["decoder.p5", "decoder.p4", "decoder.p3", "decoder.p2"]
    if all(hasattr(dec, p) for p in ("aspp", "block1", "block2")):  # DeepLabV3+
        return ["decoder.aspp", "decoder.block1", "decoder.block2"]
    if hasattr(dec, "aspp"):  # DeepLabV3
        return ["decoder.aspp"] if not isinstance(dec, nn.Sequential) else ["decoder"]
    return []


def _encoder_depth(model: nn.Module) -> Optional[int]:
    enc = getattr(model, "encoder", None)
    if enc is None:
        return None
    depth = getattr(enc, "_depth", None) or getattr(enc, "depth", None)
    if isinstance(depth, int):
        return depth
    out_channels = getattr(enc, "out_channels", None)
    return len(out_channels) - 1 if out_channels is not None else None


def alias_names(model: nn.Module) -> dict[str, tuple[str, Optional[int]]]:
    """All aliases valid for ``model``: alias -> (module path, list index or None)."""
    out: dict[str, tuple[str, Optional[int]]] = {}
    depth = _encoder_depth(model)
    if depth is not None:
        out["bottleneck"] = ("encoder", depth)
        for i in range(1, depth + 1):
            out[f"encoder.{i}"] = ("encoder", i)
    stages = _decoder_stages(model)
    for i, path in enumerate(stages):
        out[f"decoder.{i}"] = (path, None)
    if stages:
        out["decoder.last"] = (stages[-1], None)
    return out


def resolve_layer(model: nn.Module, name: str) -> LayerRef:
    """Resolve a dotted module path or an alias; raise SegxaiError listing close names."""
    modules = dict(model.named_modules())
    if name in modules and name != "":
        return LayerRef(name, modules[name])
    aliases = alias_names(model)
    key = name.strip().lower()
    m = _ALIAS_RE.match(key)
    if m:
        kind, idx = m.groups()
        if idx == "last":
            key = f"{kind}.last"
        else:
            i = int(idx)
            n = (_encoder_depth(model) or 0) + 1 if kind == "encoder" else len(_decoder_stages(model))
            if kind == "encoder" and i < 0:
                i += n
            elif kind == "decoder" and i < 0:
                i += n
            key = f"{kind}.{i}"
    if key in aliases:
        path, index = aliases[key]
        if index is None:
            return LayerRef(path, modules[path])
        producer = _encoder_producers(model).get(index)
        if producer is not None:
            return LayerRef(producer, modules[producer])
        if index == _encoder_depth(model):  # nothing in the encoder consumes it: list capture is exact
            return LayerRef(f"{path}[{index}]", modules[path], index)
        raise SegxaiError(
            f"layer alias {name!r}: cannot find the encoder module producing feature map {index}; "
            "use its dotted module name (see `segxai layers`)"
        )
    candidates = [n for n in modules if n] + list(aliases)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise SegxaiError(
        f"unknown layer {name!r}{hint} (run `segxai layers` to list the layers of this model)"
    )


class _Trace(NamedTuple):
    outputs: dict[str, object]  # module path -> output of its last call
    producers: dict[int, str]  # id(tensor) -> path of the outermost module that created it
    calls: dict[str, int]


def _trace(model: nn.Module, bands: int, size: int) -> _Trace:
    """One dummy forward with temporary hooks on every module (removed afterwards).

    A module returning one of its inputs unmodified (Identity, no-op padding; detected with the
    tensor version counter, so in-place ReLUs still count) is not a producer: a feature map is
    attributed to the block that computed it, not to a pass-through after it.
    """
    outputs: dict[str, object] = {}
    producers: dict[int, str] = {}
    calls: dict[str, int] = {}

    versions: dict[str, list[int]] = {}

    def make_pre(mod_name: str):
        def pre(_mod, inp):
            versions.setdefault(mod_name, []).append(
                {id(i): i._version for i in inp if isinstance(i, torch.Tensor)}
            )

        return pre

    def make_hook(mod_name: str):
        def hook(_mod, inp, out):
            outputs[mod_name] = out
            calls[mod_name] = calls.get(mod_name, 0) + 1
            before = versions[mod_name].pop()
            passthrough = isinstance(out, torch.Tensor) and before.get(id(out)) == getattr(out, "_version", None)
            if isinstance(out, torch.Tensor) and not passthrough:
                producers[id(out)] = mod_name  # inner modules fire first: the outermost wins

        return hook

    handles = []
    for n, m in model.named_modules():
        if n:
            handles.append(m.register_forward_pre_hook(make_pre(n)))
            handles.append(m.register_forward_hook(make_hook(n)))
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        kw = dict(device=p.device, dtype=p.dtype) if p is not None else {}
        with torch.no_grad():
            model(torch.zeros(1, bands, size, size, **kw))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return _Trace(outputs, producers, calls)


def _input_bands(model: nn.Module) -> int:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise SegxaiError("cannot infer the number of input bands (no Conv2d in the model)")


_PRODUCER_CACHE: "weakref.WeakKeyDictionary[nn.Module, dict[int, str]]" = weakref.WeakKeyDictionary()


def _encoder_producers(model: nn.Module) -> dict[int, str]:
    """Encoder feature index -> the encoder submodule producing it (called once), cached per model.

    Hooking that module (not the encoder's output list) matters for gradients: the list element of
    an intermediate stage was already consumed by the next stage, so a gradient taken at the list
    would miss that path.
    """
    if model in _PRODUCER_CACHE:
        return _PRODUCER_CACHE[model]
    stride = int(getattr(model.encoder, "output_stride", 32) or 32)
    tr = _trace(model, _input_bands(model), max(64, 2 * stride))
    feats = tr.outputs.get("encoder")
    found: dict[int, str] = {}
    if isinstance(feats, (list, tuple)):
        for i, f in enumerate(feats):
            name = tr.producers.get(id(f))
            if name is not None and name.startswith("encoder.") and tr.calls.get(name) == 1:
                found[i] = name
    _PRODUCER_CACHE[model] = found
    return found


def _shape_str(out: object) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(s) for s in out.shape)
    if isinstance(out, (list, tuple)):
        return "[" + ", ".join(_shape_str(o) for o in out) + "]"
    return type(out).__name__


def describe_layers(model: nn.Module, bands: int, tile_size: int) -> list[LayerInfo]:
    """Every module with its type, output shape for a (1, bands, tile, tile) input, and aliases.

    Runs one dummy forward with temporary hooks (removed afterwards). Encoder aliases are shown on
    the module that produces that encoder feature map.
    """
    tr = _trace(model, bands, tile_size)
    alias_of: dict[str, list[str]] = {}
    for alias in alias_names(model):
        try:
            target = resolve_layer(model, alias).name
        except SegxaiError:
            continue
        alias_of.setdefault(target, []).append(alias)
    named = [(n, m) for n, m in model.named_modules() if n]
    infos = [
        LayerInfo(n, type(m).__name__, _shape_str(tr.outputs.get(n, "not called")), tuple(alias_of.get(n, ())))
        for n, m in named
    ]
    for target, als in alias_of.items():  # list-element targets (encoder[i]) are not modules
        if target not in tr.outputs:
            path, _, idx = target.partition("[")
            feats = tr.outputs.get(path)
            shape = _shape_str(feats[int(idx.rstrip("]"))]) if isinstance(feats, (list, tuple)) else "?"
            infos.append(LayerInfo(target, "encoder feature", shape, tuple(als)))
    return infos

"""Target-layer names: dotted module paths, plus the aliases each model family defines.

A layer is named either by its dotted path from ``model.named_modules()`` (always works, any
``nn.Module``) or by an alias of the model's family (``bottleneck``, ``encoder.N``, ``decoder.N``,
``decoder.last`` for smp models: see :mod:`segxai_cli.model.smp`). Exact module paths win over
aliases; ``.`` and ``-`` are interchangeable in aliases and negative indices count from the end.
"""

from __future__ import annotations

import difflib
import re
from typing import NamedTuple, Union

from torch import nn

from segxai_cli.errors import UsageError
from segxai_cli.model.adapter import LayerRef, ModelAdapter
from segxai_cli.model.families import as_adapter
from segxai_cli.model.trace import example_input, shape_str, trace

__all__ = ["LayerInfo", "LayerRef", "describe_layers", "resolve_layer"]

_ALIAS_RE = re.compile(r"^(encoder|decoder)[.\-](-?\d+|last)$")


class LayerInfo(NamedTuple):
    name: str
    type: str
    shape: str
    aliases: tuple[str, ...]


def _alias_key(adapter: ModelAdapter, name: str) -> str:
    key = name.strip().lower()
    m = _ALIAS_RE.match(key)
    if not m:
        return key
    kind, idx = m.groups()
    if idx == "last":
        return f"{kind}.last"
    i = int(idx)
    if i < 0:
        n = sum(1 for a in adapter.aliases() if a.startswith(f"{kind}.") and a[len(kind) + 1:].isdigit())
        i += n + (1 if kind == "encoder" else 0)  # encoder aliases start at 1
    return f"{kind}.{i}"


def resolve_layer(model: Union[nn.Module, ModelAdapter], name: str) -> LayerRef:
    """Resolve a dotted module path or an alias; raise a UsageError listing close names."""
    adapter = as_adapter(model)
    modules = dict(adapter.module.named_modules())
    if name in modules and name != "":
        return LayerRef(name, modules[name])
    aliases = adapter.aliases()
    key = _alias_key(adapter, name)
    if key in aliases:
        path, index = aliases[key]
        return adapter.resolve_alias(key, path, index)
    candidates = [n for n in modules if n] + list(aliases)
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    hint = f"; did you mean: {', '.join(close)}" if close else ""
    raise UsageError(f"unknown layer {name!r}{hint} (run `segxai layers` to list the layers of this model)")


def describe_layers(model: Union[nn.Module, ModelAdapter], bands: int, tile_size: int) -> list[LayerInfo]:
    """Every module with its type, output shape for a (1, bands, tile, tile) input, and aliases.

    Runs one dummy forward with temporary hooks (removed afterwards). Encoder aliases are shown on
    the module that produces that encoder feature map.
    """
    adapter = as_adapter(model)
    net = adapter.module
    tr = trace(net, example_input(net, bands, tile_size))
    alias_of: dict[str, list[str]] = {}
    for alias in adapter.aliases():
        try:
            target = resolve_layer(adapter, alias).name
        except UsageError:
            continue
        alias_of.setdefault(target, []).append(alias)
    infos = [
        LayerInfo(n, type(m).__name__, shape_str(tr.outputs.get(n, "not called")), tuple(alias_of.get(n, ())))
        for n, m in net.named_modules() if n
    ]
    for target, als in alias_of.items():  # list-element targets (encoder[i]) are not modules
        if target not in tr.outputs:
            path, _, idx = target.partition("[")
            feats = tr.outputs.get(path)
            shape = shape_str(feats[int(idx.rstrip("]"))]) if isinstance(feats, (list, tuple)) else "?"
            infos.append(LayerInfo(target, "encoder feature", shape, tuple(als)))
    return infos

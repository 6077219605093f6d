"""One dummy forward with temporary hooks on every module: what each module outputs, and who made it.

Used to list a model's layers with their output shapes (``segxai layers``) and to find which
submodule produced each element of a list output (smp encoders return a list of feature maps; a
CAM must hook the module that computed a feature map, not the list).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Trace(NamedTuple):
    outputs: dict[str, object]  # module path -> output of its last call
    producers: dict[int, str]  # id(tensor) -> path of the outermost module that created it
    calls: dict[str, int]


def trace(model: nn.Module, example: torch.Tensor) -> Trace:
    """Run ``model(example)`` under no_grad with hooks on every named module (removed afterwards).

    A module returning one of its inputs unmodified (Identity, no-op padding; detected with the
    tensor version counter, so in-place ReLUs still count) is not a producer: a feature map is
    attributed to the block that computed it, not to a pass-through after it.
    """
    outputs: dict[str, object] = {}
    producers: dict[int, str] = {}
    calls: dict[str, int] = {}
    versions: dict[str, list[dict[int, int]]] = {}

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
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Trace(outputs, producers, calls)


def example_input(model: nn.Module, bands: int, size: int) -> torch.Tensor:
    """A zero image (1, bands, size, size) on the model's device and dtype."""
    p = next(model.parameters(), None)
    kw = dict(device=p.device, dtype=p.dtype) if p is not None else {}
    return torch.zeros(1, bands, size, size, **kw)


def input_bands(model: nn.Module) -> int:
    """Input channels of the first convolution (a model without one must be told)."""
    from segxai_cli.errors import UsageError

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
    raise UsageError("cannot infer the number of input bands (no Conv2d in the model)")


def shape_str(out: object) -> str:
    if isinstance(out, torch.Tensor):
        return "x".join(str(s) for s in out.shape)
    if isinstance(out, (list, tuple)):
        return "[" + ", ".join(shape_str(o) for o in out) + "]"
    return type(out).__name__


def resolution_stages(model: nn.Module, container: str, bands: int, size: int) -> list[str]:
    """The last direct child of ``container`` at each output resolution, in forward order.

    A backbone written as a sequence of blocks (torchvision's ``IntermediateLayerGetter``, a
    Hugging Face ``stages`` list) has no "encoder feature N" list: its stage ends are found by
    running one dummy forward and watching where the resolution changes.
    """
    tr = trace(model, example_input(model, bands, size))
    prefix = f"{container}." if container else ""
    order: list[tuple[str, tuple[int, int]]] = []
    for name, _ in dict(model.named_modules())[container].named_children():
        out = tr.outputs.get(prefix + name)
        if isinstance(out, torch.Tensor) and out.ndim == 4:
            order.append((prefix + name, tuple(out.shape[-2:])))
    ends: list[str] = []
    for i, (name, res) in enumerate(order):
        if i + 1 == len(order) or order[i + 1][1] != res:
            ends.append(name)
    return ends

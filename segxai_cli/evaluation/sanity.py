"""The model-parameter randomisation test (Adebayo et al. 2018, "Sanity checks for saliency maps").

A faithful explanation must change when the weights it explains are destroyed. The model's
parameterised modules are split into *groups* -- for smp models the segmentation head, each decoder
stage (``decoder.blocks.N``; FPN ``p5..p2``; DeepLabV3+ ``aspp/block1/block2``), the rest of the
decoder, then each encoder stage (the modules between two encoder feature maps, ``encoder.N`` = the
stage producing feature map N); any other model: its top-level children -- ordered from the output
towards the input (by when the forward pass finishes them). Modules the forward never calls are left alone.

- **cascading** randomisation: step k re-initialises groups 1..k (the top k), one row per step, so
  the last step is the fully random model;
- **independent** randomisation: step k re-initialises group k alone.

A group gets the same random weights in both tests (its re-initialisation is seeded by ``--seed`` and
its name): ``reset_parameters()`` of each module (on the CPU, so it is the same on every device);
a module without one gets normal noise with the trained tensor's standard deviation.
Similarity of each map with the trained model's map (same tile, method, layer, explained pixels):
Spearman rank correlation, SSIM and HOG similarity (:mod:`~segxai_cli.evaluation.similarity`).
"""

from __future__ import annotations

import copy
import math
import warnings
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from segxai_cli.evaluation import metrics as M
from segxai_cli.evaluation.similarity import HOG_BLOCK, HOG_CELL, hog_similarity, ssim
from segxai_cli.model.families import as_adapter
from segxai_cli.model.trace import example_input, input_bands



@dataclass(frozen=True)
class Group:
    """Modules re-initialised together: a name (a layer path or alias) and the module paths."""

    name: str
    modules: tuple[str, ...]


def _finish_order(net: nn.Module, size: int) -> dict[str, int]:
    """Module path -> the order in which one dummy forward finished it (modules never called are absent)."""
    order: dict[str, int] = {}

    def hook(name: str):
        def done(_mod, _inp, _out) -> None:  # returns None: the output is left as it is
            order.setdefault(name, len(order))
        return done

    handles = [m.register_forward_hook(hook(n)) for n, m in net.named_modules() if n]
    try:
        with torch.no_grad():
            net(example_input(net, input_bands(net), size))
    finally:
        for h in handles:
            h.remove()
    return order


def randomization_groups(model: nn.Module) -> list[Group]:
    """The groups of the cascade, output side first (see the module docstring)."""
    adapter = as_adapter(model)
    net = adapter.module
    order = _finish_order(net, max(64, 2 * adapter.stride))
    leaves = [n for n, m in net.named_modules()
              if n in order and next(m.parameters(recurse=False), None) is not None]
    name_of = _smp_names(adapter, order) if hasattr(adapter, "decoder_stages") else None
    groups: dict[str, list[str]] = {}
    for leaf in leaves:
        name = name_of(leaf) if name_of else leaf.split(".")[0]
        groups.setdefault(name, []).append(leaf)
    ranked = sorted(groups.items(), key=lambda kv: -max(order[n] for n in kv[1]))
    return [Group(name, tuple(mods)) for name, mods in ranked]


def _smp_names(adapter, order: dict[str, int]):
    stages = adapter.decoder_stages()
    producers = getattr(adapter, "_encoder_producers", dict)()
    feats = sorted((order[p], i) for i, p in producers.items() if p in order)

    def name_of(leaf: str) -> str:
        if leaf.startswith("segmentation_head"):
            return "segmentation_head"
        for st in stages:
            if leaf == st or leaf.startswith(st + "."):
                return st
        if leaf.startswith("decoder."):
            return "decoder.other"
        if leaf.startswith("encoder.") and feats:
            done = order[leaf]
            i = next((i for o, i in feats if o >= done), None)
            return f"encoder.{i}" if i is not None else "encoder.other"
        return leaf.split(".")[0]

    return name_of


class Randomizer:
    """The trained model and, one at a time, its randomised variants (a single working copy).

    ``steps()`` yields ``(test, step, group name, model)``: the cascade then the independent test.
    The working copy is restored afterwards; the random weights are drawn once, in ``__init__``.
    """

    def __init__(self, model: nn.Module, seed: int = 0, groups: Sequence[Group] | None = None) -> None:
        self.groups = list(groups) if groups is not None else randomization_groups(model)
        device = next(model.parameters()).device
        self.work = copy.deepcopy(model).eval()
        self.trained = {k: v.detach().clone() for k, v in self.work.state_dict().items()}
        clone = copy.deepcopy(model).cpu()
        mods = dict(clone.named_modules())
        self.keys: list[list[str]] = []
        self.random: dict[str, torch.Tensor] = {}
        for g in self.groups:
            reinit_group(mods, g, seed)
            keys = [k for k in self.trained if any(k.startswith(m + ".") for m in g.modules)]
            state = clone.state_dict()
            self.random.update({k: state[k].detach().clone().to(device) for k in keys})
            self.keys.append(keys)

    def params(self, i: int) -> int:
        """Number of parameter values re-initialised by group ``i``."""
        mods = dict(self.work.named_modules())
        return sum(p.numel() for m in self.groups[i].modules for p in mods[m].parameters(recurse=False))

    def _set(self, i: int, random: bool) -> None:
        state = self.work.state_dict()
        src = self.random if random else self.trained
        with torch.no_grad():
            for k in self.keys[i]:
                state[k].copy_(src[k])

    def steps(self) -> Iterator[tuple[str, int, str, nn.Module]]:
        try:
            for i, g in enumerate(self.groups):
                self._set(i, True)
                yield "cascade", i + 1, g.name, self.work
            for i in range(len(self.groups)):
                self._set(i, False)
            for i, g in enumerate(self.groups):
                self._set(i, True)
                yield "independent", i + 1, g.name, self.work
                self._set(i, False)
        finally:
            for i in range(len(self.groups)):
                self._set(i, False)


def reinit_group(mods: dict[str, nn.Module], group: Group, seed: int) -> None:
    """Re-initialise a group's modules in place, seeded by ``seed`` and the group's name (CPU RNG)."""
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(zlib.crc32(f"{int(seed)}/{group.name}".encode()))
        for name in group.modules:
            mod = mods[name]
            reset = getattr(mod, "reset_parameters", None)
            if callable(reset):
                reset()
                continue
            for p in mod.parameters(recurse=False):
                p.normal_(0.0, float(p.std()) if p.numel() > 1 else 1.0)


def sanity_rows(randomizer: Randomizer, images: torch.Tensor, maps: dict[str, dict[str, torch.Tensor]],
                explain: torch.Tensor, region: torch.Tensor, cfg, target_class: int) -> list[list[dict[str, Any]]]:
    """Per tile, one row per test × step × layer × method: the similarities with the trained maps."""
    from segxai_cli.cam import EmptyRegionWarning, explain_batch

    B = images.shape[0]
    out: list[list[dict[str, Any]]] = [[] for _ in range(B)]
    for test, step, label, net in randomizer.steps():
        for layer in cfg.layers:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyRegionWarning)
                rand = explain_batch(net, images, layer=layer.split("+"), methods=list(cfg.methods),
                                     target_class=target_class, region=explain, normalize=True,
                                     use_probs=cfg.use_probs, score_chunk=cfg.score_chunk)
            for m in cfg.methods:
                sims = similarities(maps[layer][m], rand[m], region)
                for b in range(B):
                    out[b].append({"method": m, "layer": layer, "test": test, "step": step, "randomized": label,
                                   **{k: float(v[b]) for k, v in sims.items() if k != "constant_map"},
                                   "constant_map": bool(sims["constant_map"][b])})
    return out


def similarities(S: torch.Tensor, R: torch.Tensor, region: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spearman of the absolute maps, SSIM and HOG similarity (B,) each; whether R is constant on the region."""
    S, R = S.float(), R.float()
    big = min(S.shape[-2:]) >= HOG_CELL * HOG_BLOCK
    hi = torch.where(region, R, -math.inf).flatten(1).amax(1)
    lo = torch.where(region, R, math.inf).flatten(1).amin(1)
    constant = ~(hi > lo)
    return {
        "spearman": M.spearman(S.abs(), R.abs(), region),
        "ssim": ssim(S, R, region).cpu(),
        "hog": hog_similarity(S, R).cpu() if big else torch.full((S.shape[0],), math.nan),
        "constant_map": constant.cpu(),
    }

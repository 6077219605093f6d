"""Weights as people save them: finding the state_dict in a checkpoint and fitting it to a model.

Training code wraps weights in many ways: ``{"state_dict": sd}`` (Lightning, TorchGeo, with
``hyper_parameters`` beside it and a ``model.`` prefix on every key), ``{"model_state_dict": sd}``,
DataParallel's ``module.`` prefix, ``torch.compile``'s ``_orig_mod.``. :func:`unwrap` finds the
tensors, :func:`align_keys` strips the prefixes the model does not have, and :func:`load_weights`
names the first missing, unexpected or mis-shaped keys when they still do not fit.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from segxai_cli.errors import InputError

STATE_KEYS = ("state_dict", "model_state_dict", "model", "state", "net", "network", "weights", "params")
PREFIXES = ("module.", "model.", "_orig_mod.", "net.", "network.")


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def unwrap(obj: Any) -> tuple[Optional[dict[str, torch.Tensor]], str]:
    """(the state_dict inside a loaded checkpoint or None, where it was: 'state_dict', 'checkpoint[key]')."""
    if is_state_dict(obj):
        return obj, "state_dict"
    if isinstance(obj, dict):
        for key in STATE_KEYS:
            inner = obj.get(key)
            if is_state_dict(inner):
                return inner, f"checkpoint[{key!r}]"
            if isinstance(inner, dict):  # e.g. {"model": {"state_dict": ...}}
                found, where = unwrap(inner)
                if found is not None:
                    return found, f"checkpoint[{key!r}]" + where.removeprefix("checkpoint")
    return None, ""


def strip_prefix(state: dict[str, torch.Tensor], prefix: str, keep_others: bool = False) -> dict[str, torch.Tensor]:
    """Keys under ``prefix`` with it removed (others dropped unless ``keep_others``)."""
    out = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if keep_others:
        out.update({k: v for k, v in state.items() if not k.startswith(prefix)})
    return out


def align_keys(state: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (``module.``, ``model.``, …) as long as that makes more keys fit ``wanted``.

    A Lightning checkpoint also holds non-model tensors (``criterion.weight``…): keys that lose
    nothing by being dropped are dropped once the prefix of the model's keys is found.
    """
    def fit(sd):
        return len(wanted.intersection(sd))

    current = state
    for _ in range(3):  # e.g. module.model.x
        best = max((strip_prefix(current, p) for p in PREFIXES), key=fit)
        if fit(best) <= fit(current):
            break
        current = best
    return current


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], label: str) -> None:
    """``model.load_state_dict(state)`` after :func:`align_keys`; a misfit names its first keys."""
    own = model.state_dict()
    state = align_keys(state, set(own))
    problem = misfit(own, state)
    if problem:
        raise InputError(f"weights do not fit {label}: {problem}")
    model.load_state_dict(state, strict=True)


def misfit(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """'' when ``state`` fits ``own`` exactly, else the first missing / unexpected / mis-shaped keys."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s) ({_first(unexpected)})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape mismatch(es) ({k}: file {tuple(state[k].shape)}, "
                     f"model {tuple(own[k].shape)})")
    return "; ".join(parts)


def _first(keys: list[str], n: int = 3) -> str:
    more = f", … +{len(keys) - n}" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more

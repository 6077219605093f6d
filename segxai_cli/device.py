"""Choosing the torch device (``--device auto|cpu|cuda[:N]``) and mixed precision (``--autocast``)."""

from __future__ import annotations

import contextlib
import functools
import glob
import os
from typing import Any

import torch

from segxai_cli.errors import SegxaiError, UsageError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                   "float16": torch.float16, "half": torch.float16}


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` prefers CUDA when available; an explicit CUDA request without a GPU is a user error."""
    if isinstance(spec, torch.device):
        return spec
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise SegxaiError(f"--device {spec}: CUDA is not available on this machine (use --device cpu or auto)")
        dev = torch.device(spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SegxaiError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
        return dev
    raise UsageError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")


def autocast(device: torch.device, spec: Any) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for the ``autocast`` option: None/False/'none' (off), True, 'bf16', 'fp16' or a dtype."""
    if spec in (None, False, "none", ""):
        return contextlib.nullcontext()
    if spec is True:
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    elif isinstance(spec, torch.dtype):
        dtype = spec
    elif isinstance(spec, str) and spec.lower() in AUTOCAST_DTYPES:
        dtype = AUTOCAST_DTYPES[spec.lower()]
    else:
        raise UsageError(f"autocast must be one of None, 'bf16', 'fp16'; got {spec!r}")
    return torch.autocast(device_type=device.type, dtype=dtype)


_CACHE_FALLBACK = 32 * 2**20


@functools.lru_cache(maxsize=1)
def cpu_cache_bytes() -> int:
    """The CPU's largest cache (the L3 on most machines), from sysfs; 32 MiB where it cannot be read."""
    best = 0
    for d in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            with open(os.path.join(d, "size")) as fh:
                text = fh.read().strip().upper()
            best = max(best, int(text.rstrip("KMG")) * {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1))
        except (OSError, ValueError):
            continue
    return best or _CACHE_FALLBACK


def cache_chunk(device: torch.device, item_bytes: int, default: int, live: int = 4) -> int:
    """Items per chunk of a batched perturbation: on a CPU as many as keep ``live`` tensors of
    ``item_bytes`` each within the last-level cache (1 to ``default``); elsewhere ``default``.

    Why: on a CPU these loops are memory-bound once their tensors leave the cache. At a 256² tile
    (U-Net resnet34, 2-core EPYC, 32 MiB L3) Ablation-CAM ran 1.9x faster at decoder block 0 with
    2 ablations per chunk than with 32, Score-CAM 1.8x and RISE 1.4x with 1-2 images per forward."""
    if device.type != "cpu":
        return default
    return int(max(1, min(default, cpu_cache_bytes() // (live * max(1, item_bytes)))))


def forward_chunk(x: torch.Tensor, given: Any, default: int = 32) -> int:
    """Perturbed images per whole-model forward: ``given`` when set, else :func:`cache_chunk` with
    about 16 floats per input pixel per image (a CNN's 64-channel stem at half resolution)."""
    if given is not None:
        return max(1, int(given))
    return cache_chunk(x.device, 16 * x.shape[-2] * x.shape[-1] * x.element_size(), default)

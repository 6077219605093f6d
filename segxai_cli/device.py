"""Choosing the torch device (``--device auto|cpu|cuda[:N]``) and mixed precision (``--autocast``)."""

from __future__ import annotations

import contextlib
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

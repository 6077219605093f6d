"""Choosing the torch device from the ``--device auto|cpu|cuda[:N]`` option."""

from __future__ import annotations

import torch

from segxai_cli.errors import SegxaiError


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
    raise SegxaiError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")

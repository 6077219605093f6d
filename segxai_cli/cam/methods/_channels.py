"""Shared by the methods: a weighted sum of activation channels."""

from __future__ import annotations

import torch


def weighted_sum(w: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """sum_k w_k A_k for per-channel weights w (B, K) and activations A (B, K, h, w) → (B, h, w)."""
    return torch.einsum("bk,bkhw->bhw", w.to(A.dtype), A)

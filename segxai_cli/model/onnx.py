"""ONNX models through onnxruntime, an optional extra: ``pip install 'segxai[onnx]'``. Bare files.

:class:`OnnxModule` wraps an ``InferenceSession`` as an ``nn.Module`` taking and returning torch
tensors, so the pipeline treats it like any model: the batch goes to the host once per forward
(on CUDA through onnxruntime's CUDA provider when it is installed, else the CPU one) and the
logits come back to the input's device. A model exported with a fixed batch size runs image by
image; one with a fixed height/width only takes that tile. No hooks, no gradients: only the
model-agnostic methods (RISE, occlusion) apply.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import numpy as np
import torch
from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter, bytes_payload, model_bytes

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise InputError("ONNX models need onnxruntime: pip install 'segxai[onnx]'") from None
    return onnxruntime


class OnnxModule(nn.Module):
    """An ONNX model as a module: ``forward(x)`` runs the session on ``x`` (B, C, H, W)."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.data = bytes(data)
        ort = _ort()
        try:
            self._cpu = ort.InferenceSession(self.data, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"not a loadable ONNX model ({str(exc).strip().splitlines()[0][:160]})") from None
        self._cuda: Optional[Any] = None
        inp = self._cpu.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.dtype = np.float16 if "float16" in inp.type else np.float32

    @property
    def fixed_batch(self) -> bool:
        return isinstance(self.input_shape[0], int)

    @property
    def fixed_size(self) -> Optional[tuple[int, int]]:
        h, w = self.input_shape[2:4] if len(self.input_shape) == 4 else (None, None)
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    @property
    def in_channels(self) -> Optional[int]:
        c = self.input_shape[1] if len(self.input_shape) > 1 else None
        return c if isinstance(c, int) else None

    def session(self, device: torch.device):
        if device.type == "cuda" and "CUDAExecutionProvider" in _ort().get_available_providers():
            if self._cuda is None:
                self._cuda = _ort().InferenceSession(self.data, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
            return self._cuda
        return self._cpu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sess = self.session(x.device)
        arr = x.detach().to("cpu", torch.float32).numpy().astype(self.dtype, copy=False)
        parts = [arr[i:i + 1] for i in range(arr.shape[0])] if self.fixed_batch else [arr]
        outs = [sess.run(None, {self.input_name: np.ascontiguousarray(p)})[0] for p in parts]
        return torch.from_numpy(np.concatenate(outs).astype(np.float32)).to(x.device)


class OnnxAdapter(ModelAdapter):
    family = "onnx"
    bare = True

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return isinstance(module, OnnxModule)

    @classmethod
    def restore(cls, info: "ModelInfo", payload: dict[str, Any]) -> nn.Module:
        return OnnxModule(model_bytes(payload, cls.family))

    @classmethod
    def payload(cls, module: nn.Module) -> dict[str, Any]:
        return bytes_payload(module.data)

    def tile_problem(self, tile: int) -> Optional[str]:
        fixed = self.module.fixed_size
        if fixed is not None and fixed != (tile, tile):
            return f"must be {fixed[0]}: the ONNX model was exported for {fixed[0]}x{fixed[1]} inputs"
        return None

"""Hugging Face transformers: SegFormer and UperNet (``SegformerForSemanticSegmentation``,
``UperNetForSemanticSegmentation``), an optional extra: ``pip install 'segxai[hf]'``.

The output is a ``SemanticSegmenterOutput`` whose ``.logits`` are at ¼ of the input for SegFormer:
the base adapter upsamples them bilinearly (as ``post_process_semantic_segmentation`` does). A
model is imported from a local ``save_pretrained`` folder (never from the hub) and stored in the
segxai checkpoint as its config (``model_kwargs["config"]``) plus its state_dict.

Aliases: SegFormer ``encoder.N`` = stage N (``segformer.stages.N-1``; transformers 4:
``segformer.encoder.layer_norm.N-1``, tokens reshaped on the grid), ``decoder.N`` = the per-stage
MLPs deepest first, ``decoder.last`` = the fused features (``decode_head.activation``). UperNet:
``encoder.N`` = backbone stage ends, ``decoder.0`` = the pyramid pooling bottleneck, then the FPN
convs from coarse to fine, ``decoder.last`` = ``decode_head.fpn_bottleneck``.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from torch import nn

from segxai_cli.errors import InputError
from segxai_cli.model.adapter import ModelAdapter, stage_aliases
from segxai_cli.model.trace import input_bands, resolution_stages

if TYPE_CHECKING:
    from segxai_cli.model.info import ModelInfo

ARCHS = ("SegformerForSemanticSegmentation", "UperNetForSemanticSegmentation")
_STAGES: "weakref.WeakKeyDictionary[nn.Module, list[str]]" = weakref.WeakKeyDictionary()


def transformers_module():
    try:
        import transformers
    except ImportError:
        raise InputError("Hugging Face models need transformers: pip install 'segxai[hf]'") from None
    return transformers


class HfAdapter(ModelAdapter):
    family = "hf"

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return type(module).__module__.startswith("transformers.")

    @classmethod
    def build(cls, info: "ModelInfo") -> nn.Module:
        config = info.model_kwargs.get("config")
        if info.arch not in ARCHS or not isinstance(config, dict):
            raise InputError(f"cannot build Hugging Face model {info.arch!r} (known: {', '.join(ARCHS)}; "
                             "the checkpoint must hold its config)")
        model_cls = getattr(transformers_module(), info.arch)
        try:
            return model_cls(model_cls.config_class.from_dict(config))
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"cannot build {info.arch} from its config: {exc}") from None

    @staticmethod
    def from_pretrained(folder: Path) -> tuple[nn.Module, dict[str, Any]]:
        """A model saved with ``save_pretrained`` (local folder only) and its config as a plain dict."""
        tf = transformers_module()
        cfg = json.loads((folder / "config.json").read_text())
        arch = next((a for a in cfg.get("architectures") or [] if a in ARCHS), None)
        if arch is None:
            raise InputError(f"{folder}: config.json names {cfg.get('architectures')}; segxai reads {', '.join(ARCHS)}")
        model = getattr(tf, arch).from_pretrained(str(folder), local_files_only=True)
        return model.eval(), json.loads(model.config.to_json_string(use_diff=False))

    @property
    def stride(self) -> int:
        return 32

    def aliases(self) -> dict[str, tuple[str, Optional[int]]]:
        names = dict(self.module.named_modules())
        if "decode_head.linear_fuse" in names:  # SegFormer
            enc = _numbered(names, "segformer.stages") or _numbered(names, "segformer.encoder.layer_norm")
            heads = _numbered(names, "decode_head.linear_projections")[::-1]
            dec = heads + ["decode_head.activation"]
        else:  # UperNet
            enc = self._stages()
            dec = ["decode_head.bottleneck"] + _numbered(names, "decode_head.fpn_convs")[::-1] + ["decode_head.fpn_bottleneck"]
        return stage_aliases(enc, [p for p in dec if p in names])

    def _stages(self) -> list[str]:
        if self.module not in _STAGES:
            names = dict(self.module.named_modules())
            container = next((c for c in ("backbone.encoder.stages", "backbone.encoder.layers", "backbone.stages")
                              if c in names), None)
            _STAGES[self.module] = [] if container is None else resolution_stages(
                self.module, container, input_bands(self.module), self.example_size())
        return _STAGES[self.module]


def _numbered(names: dict[str, nn.Module], prefix: str) -> list[str]:
    found = []
    i = 0
    while f"{prefix}.{i}" in names:
        found.append(f"{prefix}.{i}")
        i += 1
    return found

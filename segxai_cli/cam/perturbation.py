"""Perturbation CAMs: Score-CAM and Ablation-CAM, batched over (image, channel) pairs.

Both need one extra model evaluation per (image, channel). We flatten the pairs and run them in
chunks (``score_chunk`` / ``ablation_chunk``) with no hooks attached, under no_grad, on the device.
Ablation-CAM on an smp U-Net decoder block re-runs only the decoder suffix after that block,
reusing the encoder features cached during the main forward, and skips the next block's first conv
by linearity (see ``_LinearNext``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from segxai_cli.model.layers import LayerRef

if TYPE_CHECKING:
    from segxai_cli.cam.engine import Pass

_ENC_KEY = "unet_encoder_features"


def _pairs(B: int, K: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    b = torch.arange(B, device=device).repeat_interleave(K)
    k = torch.arange(K, device=device).repeat(B)
    return b, k


# ----------------------------------------------------------------------------- Score-CAM
@torch.no_grad()
def scorecam(ps: "Pass", i: int) -> torch.Tensor:
    """Score-CAM: w = softmax_k y(x * m_k), m_k = min-max(upsample_align_corners(A_k)).

    Channels whose activation is constant give an all-zero mask, i.e. the same all-zero input for
    every such channel: that input is evaluated once (one image) and its score reused.
    """
    A, x = ps.acts[i], ps.images
    B, K = A.shape[:2]
    H, W = x.shape[-2:]
    chunk = int(ps.opts.get("score_chunk", 32))
    flat = A.flatten(2)
    const = flat.amax(2) == flat.amin(2)  # (B, K)
    scores = torch.zeros(B, K, device=A.device, dtype=torch.float32)
    if bool(const.any()):
        with ps.amp():
            z0 = ps.model(torch.zeros_like(x[:1]))
        s0 = ps.scores(_expand(z0, B), ps.region)  # zero input, each image's own region
        scores = torch.where(const, s0[:, None], scores)
    bi, ki = (~const).nonzero(as_tuple=True)
    for s in range(0, bi.numel(), chunk):
        b, k = bi[s:s + chunk], ki[s:s + chunk]
        m = F.interpolate(A[b, k][:, None], size=(H, W), mode="bilinear", align_corners=True)
        mf = m.flatten(1)
        lo, hi = mf.amin(1).view(-1, 1, 1, 1), mf.amax(1).view(-1, 1, 1, 1)
        m = (m - lo) / (hi - lo + 1e-8)
        with ps.amp():
            z = ps.model(x[b] * m)
        scores[b, k] = ps.scores(z, ps.region[b]).float()
    w = torch.softmax(scores, 1)
    return torch.einsum("bk,bkhw->bhw", w, A)


def _expand(out: Any, B: int) -> Any:
    if isinstance(out, torch.Tensor):
        return out.expand(B, *out.shape[1:])
    if isinstance(out, (tuple, list)):
        return type(out)(_expand(o, B) for o in out)
    return out


# ----------------------------------------------------------------------------- Ablation-CAM
def _unet_block_index(model: nn.Module, ref: LayerRef) -> Optional[int]:
    """Index N if ``ref`` is block N of an smp U-Net decoder (suffix re-run possible), else None."""
    dec = getattr(model, "decoder", None)
    if (
        ref.index is not None
        or dec is None
        or type(dec).__name__ != "UnetDecoder"
        or not hasattr(model, "encoder")
        or not hasattr(model, "segmentation_head")
        or getattr(model, "classification_head", None) is not None
    ):
        return None
    for n, blk in enumerate(dec.blocks):
        if blk is ref.module:
            return n
    return None


def suffix_records(model: nn.Module, refs: Sequence[LayerRef]) -> list[tuple[str, nn.Module]]:
    """Modules whose outputs the main forward must cache for suffix re-runs."""
    if any(_unet_block_index(model, r) is not None for r in refs):
        return [(_ENC_KEY, model.encoder)]
    return []


def _unet_suffix(model: nn.Module, feats: list[torch.Tensor], n: int, b: torch.Tensor, x: torch.Tensor,
                 start: int | None = None):
    """Run smp UnetDecoder blocks ``start``.. (default n+1) and the head on ``x`` for images ``b``.

    Mirrors ``UnetDecoder.forward`` (smp 0.5/0.6): shapes, skips and block calls.
    """
    dec = model.decoder
    shapes = [f.shape[2:] for f in feats][::-1]
    skips = feats[1:][::-1][1:]
    for j in range(n + 1 if start is None else start, len(dec.blocks)):
        h, w = shapes[j + 1]
        skip = skips[j][b] if j < len(skips) else None
        x = dec.blocks[j](x, h, w, skip_connection=skip)
    return model.segmentation_head(x)


class _LinearNext:
    """Ablating channel k of block n's output changes the next block's first conv *linearly*.

    Next block: up(A) (nearest/bilinear, channel-wise) -> cat skip -> conv1 (linear) -> norm -> ReLU.
    So conv1(cat(up(A with k zeroed), skip)) = conv1(cat(up(A), skip)) - W[:, k] * up(A_k): the full
    pre-activation is computed once per image and each ablation only subtracts a single-channel
    convolution (a grouped conv over the chunk). That removes the upsample, concat and the full conv1
    -- the most expensive part of the suffix -- from every ablated evaluation.
    """

    def __init__(self, model: nn.Module, feats: list[torch.Tensor], n: int, A: torch.Tensor):
        dec = model.decoder
        self.blk = blk = dec.blocks[n + 1]
        shapes = [f.shape[2:] for f in feats][::-1]
        skips = feats[1:][::-1][1:]
        h, w = shapes[n + 2]
        skip = skips[n + 1] if n + 1 < len(skips) else None
        self.up = F.interpolate(A, size=(h, w), mode=blk.interpolation_mode)
        inp = self.up if skip is None else torch.cat([self.up, skip.to(A.dtype)], 1)
        self.conv: nn.Conv2d = blk.conv1[0]
        self.pre = self.conv(inp)  # (B, out, h, w), bias included once
        self.K = A.shape[1]

    @staticmethod
    def applicable(model: nn.Module, n: int) -> bool:
        dec = model.decoder
        if n + 1 >= len(dec.blocks):
            return False
        blk = dec.blocks[n + 1]
        conv1 = getattr(blk, "conv1", None)
        return (
            isinstance(getattr(blk, "attention1", None), nn.Module)
            and isinstance(blk.attention1.attention, nn.Identity)
            and isinstance(conv1, nn.Sequential)
            and isinstance(conv1[0], nn.Conv2d)
            and conv1[0].groups == 1
            and blk.interpolation_mode in ("nearest", "bilinear")
        )

    def run(self, model: nn.Module, feats, n: int, b: torch.Tensor, k: torch.Tensor):
        c = self.conv
        m = b.numel()
        weight = c.weight[:, : self.K][:, k].transpose(0, 1).reshape(m * c.out_channels, 1, *c.kernel_size)
        contrib = F.conv2d(self.up[b, k][None], weight.to(self.up.dtype), None, c.stride, c.padding,
                           c.dilation, groups=m).view(m, c.out_channels, *self.pre.shape[-2:])
        x = self.pre[b] - contrib
        for layer in list(self.blk.conv1)[1:]:  # norm + ReLU
            x = layer(x)
        x = self.blk.conv2(x)
        x = self.blk.attention2(x)
        return _unet_suffix(model, feats, n, b, x, start=n + 2)


@torch.no_grad()
def ablationcam(ps: "Pass", i: int) -> torch.Tensor:
    """Ablation-CAM: w_k = (y - y_k) / y with y_k the score when channel k of A is zeroed."""
    A, x, ref, model = ps.acts[i], ps.images, ps.refs[i], ps.model
    B, K = A.shape[:2]
    chunk = int(ps.opts.get("ablation_chunk", 32))
    n = _unet_block_index(model, ref) if ps.opts.get("ablation_suffix", True) else None
    feats = ps.extra.get(_ENC_KEY) if n is not None else None
    bi, ki = _pairs(B, K, A.device)
    yk = torch.empty(B * K, device=A.device, dtype=torch.float32)
    lin = None
    if feats is not None and ps.opts.get("ablation_linear", True) and _LinearNext.applicable(model, n):
        with ps.amp():
            lin = _LinearNext(model, feats, n, A.to(feats[-1].dtype))
    for s in range(0, B * K, chunk):
        b, k = bi[s:s + chunk], ki[s:s + chunk]
        rows = torch.arange(b.numel(), device=A.device)
        if lin is not None:
            with ps.amp():
                z = lin.run(model, feats, n, b, k)
        elif feats is not None:
            a = A[b].to(feats[-1].dtype)
            a[rows, k] = 0
            with ps.amp():
                z = _unet_suffix(model, feats, n, b, a)
        else:
            def hook(_mod, _inp, out, k=k, rows=rows):
                t = out if ref.index is None else out[ref.index]
                t = t.clone()
                t[rows, k] = 0
                if ref.index is None:
                    return t
                items = list(out)
                items[ref.index] = t
                return type(out)(items) if isinstance(out, tuple) else items

            h = ref.module.register_forward_hook(hook)
            try:
                with ps.amp():
                    z = model(x[b])
            finally:
                h.remove()
        yk[s:s + chunk] = ps.scores(z, ps.region[b]).float()
    y = ps.y.float()[:, None]
    yk = yk.view(B, K)
    safe = torch.where(y == 0, torch.ones_like(y), y)
    w = torch.where(y == 0, torch.zeros_like(yk), (y - yk) / safe)
    return torch.einsum("bk,bkhw->bhw", w, A)

"""The smp U-Net decoder after a block, re-run cheaply for Ablation-CAM (one ablated channel per pair).

An ablation changes only what follows the target block ``n``, so only that suffix is re-run, on the
encoder features cached by the main forward. Four exact shortcuts make each ablated pass cheaper
than the blocks it stands for (each is checked against the plain re-run, ``run``, to ~1e-6):

1. **Next block by linearity.** Block n+1 starts ``conv1(cat(up(A), skip))``; with channel k set to
   v that is ``conv1(cat(up(A), skip)) - W[:, k] * (up(A_k) - v)``: the full pre-activation is
   computed once per image and each ablation subtracts a one-channel convolution.
2. **Skips once per image.** Later blocks convolve ``cat(up(x), skip)``; the skip half of that
   convolution is the same for every ablation of an image and is computed once.
3. **Upsample-then-convolve at low resolution.** A 3 × 3 convolution of a nearest ×2 upsampled map is
   one stride-2 transposed convolution of the small map with 4 × 4 kernels: 16 instead of 36
   multiply-adds per input channel and low-resolution pixel, written straight into the full-size
   output (an earlier version ran four 2 × 2 convolutions and interleaved their phases: the
   interleaving copies cost ~15 % of the ablation time at block 0).
4. **Batch norm folded** into the convolutions (eval mode): one pass less over every tensor.

Every tensor of the fast path is channels-last: the decoder's last blocks have 16-32 channels at
full resolution, where oneDNN's convolutions run about twice as fast in that layout (measured 9 →
20 GMAC/s for 16 → 16 channels at 256², 2-core CPU). Pairs arrive image by image (``image``), so
the per-image tensors are broadcast, not gathered.

The head and the target score stay outside (``head``, ``features``): Ablation-CAM replaces them by a
dot product with the score's gradient when the target is linear in the decoder output
(:mod:`segxai_cli.cam.methods.ablationcam`). Where a block has another structure (attention, another
norm, bilinear upsampling, other kernel sizes) that block runs as the model's own module.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from segxai_cli.device import cache_chunk
from segxai_cli.model.adapter import SuffixRunner

ENC_KEY = "unet_encoder_features"
_GPU_CHUNK_BYTES = 4 * 2**30  # intermediates of one chunk of ablations on a GPU (CPU: the last-level cache)


def _conv_bn(seq: nn.Module) -> Optional[tuple[nn.Conv2d, torch.Tensor, torch.Tensor]]:
    """(conv, scale, shift) of a ``Conv2dReLU`` (conv 3×3 pad 1 → BatchNorm2d|Identity → ReLU), or None."""
    if not (isinstance(seq, nn.Sequential) and len(seq) == 3 and isinstance(seq[2], nn.ReLU)):
        return None
    conv, norm = seq[0], seq[1]
    if not (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.padding == (1, 1)
            and conv.stride == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1):
        return None
    bias = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels, device=conv.weight.device)
    if isinstance(norm, nn.Identity):
        return conv, torch.ones_like(bias), bias
    if isinstance(norm, nn.BatchNorm2d) and not norm.training and norm.running_var is not None:
        scale = torch.rsqrt(norm.running_var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight
        shift = (bias - norm.running_mean) * scale + (norm.bias if norm.bias is not None else 0)
        return conv, scale, shift
    return None


def _plain_attention(blk: nn.Module) -> bool:
    return all(isinstance(getattr(getattr(blk, a, None), "attention", None), nn.Identity) for a in ("attention1", "attention2"))


_CL = torch.channels_last


def _cl(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous(memory_format=_CL) if t.ndim == 4 else t


_UP2 = ((0, 0, 1), (0, 1, 1), (1, 1, 0), (1, 0, 0))  # deconv tap s <- the 3 x 3 taps t with s - 1 + t in {0, 1}


def _up2_weights(w: torch.Tensor) -> torch.Tensor:
    """3 × 3 kernels (C, Cx, 3, 3) → the 4 × 4 stride-2 transposed-convolution kernels (Cx, C, 4, 4) of
    ``conv3x3_pad1(nearest_up2(x))``: output pixel 2p + a sees x[p - 1 + a + u] (u = 0, 1) only, through
    the sum of the 3 × 3 taps that fall on that input pixel."""
    M = w.new_tensor(_UP2)
    return (M @ w @ M.T).transpose(0, 1)


def up2_conv(x: torch.Tensor, wt: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``conv3x3_pad1(nearest_up2(x))`` as one stride-2 transposed convolution (kernels of :func:`_up2_weights`):
    16 instead of 36 multiply-adds per input channel and low-resolution pixel, and written in place,
    with no upsampled copy of x and no interleaving of output phases."""
    return F.conv_transpose2d(x, wt.to(x.dtype), None if bias is None else bias.to(x.dtype), stride=2, padding=1)


class _FastBlock:
    """One decoder block, folded: ``relu(conv2'(relu(conv1_x'(up(x)) + skip_part[b])))``."""

    def __init__(self, blk: nn.Module, skip: Optional[torch.Tensor], size: tuple[int, int], in_hw: tuple[int, int],
                 dtype: torch.dtype) -> None:
        (c1, s1, t1), (c2, s2, t2) = _conv_bn(blk.conv1), _conv_bn(blk.conv2)
        w1 = (c1.weight * s1[:, None, None, None]).to(dtype)
        cx = c1.in_channels - (0 if skip is None else skip.shape[1])
        self.size, self.mode = size, blk.interpolation_mode
        self.wx = _cl(w1[:, :cx])
        self.pre = t1.to(dtype)[None, :, None, None]
        self.per_image = skip is not None
        if skip is not None:  # the skip half of conv1, once per image (+ the folded shift)
            self.pre = _cl(F.conv2d(_cl(skip.to(dtype)), _cl(w1[:, cx:]), padding=1) + self.pre)
        up2 = self.mode == "nearest" and tuple(size) == (2 * in_hw[0], 2 * in_hw[1])
        self.up2 = _cl(_up2_weights(self.wx)) if up2 else None
        self.w2, self.b2 = _cl((c2.weight * s2[:, None, None, None]).to(dtype)), t2.to(dtype)

    @staticmethod
    def applicable(blk: nn.Module) -> bool:
        return _plain_attention(blk) and _conv_bn(blk.conv1) is not None and _conv_bn(blk.conv2) is not None

    def __call__(self, x: torch.Tensor, sel) -> torch.Tensor:
        bias = None if self.per_image else self.pre.flatten()  # a constant shift rides on the convolution
        if self.up2 is not None:
            z = up2_conv(_cl(x), self.up2, bias)
        else:
            z = F.conv2d(_cl(F.interpolate(x, size=self.size, mode=self.mode)), self.wx.to(x.dtype), bias, padding=1)
        return self.finish(torch.relu_(z.add_(sel(self.pre)) if self.per_image else z))

    def finish(self, z: torch.Tensor) -> torch.Tensor:
        return torch.relu_(F.conv2d(z, self.w2.to(z.dtype), self.b2.to(z.dtype), padding=1))


class _Plan:
    """Everything precomputed for the ablations of one batch at block n (built once per activations)."""

    def __init__(self, model: nn.Module, feats: list[torch.Tensor], n: int, A: torch.Tensor) -> None:
        dec = model.decoder
        shapes = [tuple(f.shape[2:]) for f in feats][::-1]
        skips = feats[1:][::-1][1:]
        self.n, self.K = n, A.shape[1]
        self.blocks: list[Any] = []  # block j >= n + 2: a _FastBlock or (module, h, w, skip)
        for j in range(n + 2, len(dec.blocks)):
            skip = skips[j] if j < len(skips) else None
            if _FastBlock.applicable(dec.blocks[j]):
                self.blocks.append(_FastBlock(dec.blocks[j], skip, shapes[j + 1], shapes[j], A.dtype))
            else:
                self.blocks.append((dec.blocks[j], *shapes[j + 1], skip))
        self.next = None  # block n + 1 by linearity: (its _FastBlock, upsampled A, full pre-activation)
        if n + 1 < len(dec.blocks) and _FastBlock.applicable(dec.blocks[n + 1]) and \
                dec.blocks[n + 1].interpolation_mode in ("nearest", "bilinear"):
            blk, skip = dec.blocks[n + 1], skips[n + 1] if n + 1 < len(skips) else None
            fb = _FastBlock(blk, skip, shapes[n + 2], shapes[n + 1], A.dtype)
            up = F.interpolate(A, size=shapes[n + 2], mode=blk.interpolation_mode)
            self.next = (fb, up, _cl(F.conv2d(_cl(up), fb.wx, padding=1) + fb.pre))

    def features(self, A: torch.Tensor, b: torch.Tensor, k: torch.Tensor, values: Optional[torch.Tensor],
                 rerun, image: Optional[int] = None) -> torch.Tensor:
        """Decoder output (before the head) of the pairs (b, k); ``rerun(a, b)`` = the plain suffix.
        ``image``: all pairs belong to this image (per-image tensors are then broadcast)."""
        if self.next is None:
            a = A[b].clone()
            a[torch.arange(b.numel(), device=A.device), k] = 0 if values is None else values.to(A.dtype)[:, None, None]
            return rerun(a, b)

        def sel(t: torch.Tensor) -> torch.Tensor:
            return t[image:image + 1] if image is not None else t[b]

        fb, up, pre = self.next
        m = b.numel()
        delta = up[image][k] if image is not None else up[b, k]
        if values is not None:
            delta = delta - values.to(up.dtype)[:, None, None]
        wk = fb.wx[:, k].transpose(0, 1).reshape(m * fb.wx.shape[0], 1, 3, 3)
        contrib = F.conv2d(delta[None], wk, padding=1, groups=m).view(m, -1, *up.shape[-2:])
        x = fb.finish(torch.relu_(_cl(torch.sub(sel(pre), contrib))))
        for blk in self.blocks:
            x = blk(x, sel) if isinstance(blk, _FastBlock) else \
                blk[0](x, blk[1], blk[2], skip_connection=None if blk[3] is None else blk[3][b])
        return x


class UnetSuffix(SuffixRunner):
    """smp ``UnetDecoder`` blocks after block ``n`` and the head, on cached encoder features.

    Mirrors ``UnetDecoder.forward`` (smp 0.5/0.6): shapes, skips and block calls.
    """

    def __init__(self, model: nn.Module, n: int) -> None:
        self.model, self.n = model, n
        self._plan: Optional[tuple[torch.Tensor, torch.Tensor, _Plan]] = None  # (A, A in the features' dtype, plan)

    def cache_modules(self) -> list[tuple[str, nn.Module]]:
        return [(ENC_KEY, self.model.encoder)]

    @property
    def head_linear(self) -> bool:
        """The head is a linear map of the decoder output (conv, optional upsampling, no activation)."""
        head = self.model.segmentation_head
        return all(isinstance(m, (nn.Conv2d, nn.Identity, nn.UpsamplingBilinear2d)) or type(m).__name__ == "Activation"
                   and isinstance(getattr(m, "activation", None), nn.Identity) for m in head)

    @property
    def last(self) -> bool:
        return self.n == len(self.model.decoder.blocks) - 1

    def head(self, x: torch.Tensor) -> Any:
        return self.model.segmentation_head(x)

    def decode(self, cache: dict[str, Any], a: torch.Tensor, b: torch.Tensor, start: Optional[int] = None) -> torch.Tensor:
        """The decoder output (before the head) from block ``start`` (n + 1) on, the model's own modules."""
        feats = cache[ENC_KEY]
        dec = self.model.decoder
        shapes = [f.shape[2:] for f in feats][::-1]
        skips = feats[1:][::-1][1:]
        x = a.to(feats[-1].dtype)
        for j in range(self.n + 1 if start is None else start, len(dec.blocks)):
            h, w = shapes[j + 1]
            x = dec.blocks[j](x, h, w, skip_connection=skips[j][b] if j < len(skips) else None)
        return x

    def run(self, cache: dict[str, Any], a: torch.Tensor, b: torch.Tensor) -> Any:
        return self.head(self.decode(cache, a, b))

    def features(self, cache: dict[str, Any], A: torch.Tensor, b: torch.Tensor, k: torch.Tensor,
                 values: Optional[torch.Tensor] = None, fast: bool = True, image: Optional[int] = None) -> torch.Tensor:
        """Decoder output of image ``b[i]`` with channel ``k[i]`` of A set to ``values[i]`` (0), per pair
        (``image``: every ``b[i]`` is that image)."""
        feats = cache[ENC_KEY]
        if not fast:
            a = A[b].to(feats[-1].dtype, copy=True)
            a[torch.arange(b.numel(), device=A.device), k] = 0 if values is None else values.to(a.dtype)[:, None, None]
            return self.decode(cache, a, b)
        if self._plan is None or self._plan[0] is not A:
            a = A.to(feats[-1].dtype)
            self._plan = (A, a, _Plan(self.model, feats, self.n, a))
        return self._plan[2].features(self._plan[1], b, k, values, lambda a, bb: self.decode(cache, a, bb), image)

    def ablate(self, cache: dict[str, Any], A: torch.Tensor, b: torch.Tensor, k: torch.Tensor,
               values: Optional[torch.Tensor] = None, linear: bool = True) -> Any:
        """The raw output with channel ``k[i]`` of image ``b[i]`` set to ``values[i]`` (0), per pair."""
        return self.head(self.features(cache, A, b, k, values, fast=linear))

    def chunk_size(self, A: torch.Tensor) -> int:
        """Pairs per chunk: the largest per-pair intermediate (×4 live tensors) within a budget: the
        last-level cache on a CPU, 4 GiB on a GPU."""
        elems = [A.shape[1] * A.shape[-2] * A.shape[-1]]
        h, w = A.shape[-2:]
        for blk in list(self.model.decoder.blocks)[self.n + 1:]:
            h, w = 2 * h, 2 * w
            elems.append(getattr(blk.conv2[0], "out_channels", A.shape[1]) * h * w)
        item = A.element_size() * max(elems)  # bytes of one ablation's largest tensor (4 live per chunk)
        if A.device.type == "cpu":
            return cache_chunk(A.device, item, 1024)
        return int(max(1, min(1024, _GPU_CHUNK_BYTES // (4 * item))))


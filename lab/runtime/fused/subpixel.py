"""Sub-pixel resample convs (RUNTIME.md, lever 4): "nearest 2x upsample, then a 3x3 conv" as one stride-2
4x4 transposed conv on the low-resolution frames.

Why it is the same function: output row ``2i + a`` of the 3x3 conv over the upsampled frame reads upsampled
rows ``2i + a - 1 .. 2i + a + 1``, which are low-resolution rows ``i - 1, i, i`` (``a = 0``) or
``i, i, i + 1`` (``a = 1``); the zero padding of the upsampled frame is the zero padding of the low one. So
each output phase is a 2x2 conv on the low-resolution frame whose taps are sums of the 3x3 taps, and the
four phases interleaved are exactly a transposed conv with stride 2, padding 1 and a 4x4 kernel
(tap ``k`` of it serves phase ``(k + 1) % 2``; ``SUM_TAPS`` says which 3x3 taps each one sums).

What it saves: the upsampled tensor (4x the frames' pixels, the input channels wide) is never written or
read back, and the conv does 16 instead of 36 multiply-adds per output pixel and channel pair (2.25x fewer).
What it costs: the summed taps are rounded to the weights' dtype once, so the output differs from eager by
a rounding (float32: about 1e-7 relative; bf16: the last bit of some outputs). That is why it is a part of
its own (``NAME@fused+subpixel``) and not in ``@fused``, which rounds where eager rounds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: SUM_TAPS[k, j] = 1 when tap j of the 3x3 kernel (along one axis) adds into tap k of the 4x4 one.
SUM_TAPS = torch.tensor([[0., 0., 1.],   # k = 0: phase 1, low row i + 1 <- tap 2
                         [0., 1., 1.],   # k = 1: phase 0, low row i     <- taps 1 and 2
                         [1., 1., 0.],   # k = 2: phase 1, low row i     <- taps 0 and 1
                         [1., 0., 0.]])  # k = 3: phase 0, low row i - 1 <- tap 0


def is_subpixel_conv(conv: nn.Module) -> bool:
    """Whether ``conv`` (the conv after a nearest 2x upsample) folds: a plain 3x3 conv, stride 1, padding 1,
    zero padding, no dilation or groups."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """(C_out, C_in, 3, 3) conv weight -> the (C_in, C_out, 4, 4) transposed-conv weight that applies it after a
    nearest 2x upsample; half-precision weights are summed in float32 and rounded once."""
    acc = weight.float() if weight.dtype in (torch.float16, torch.bfloat16) else weight
    m = SUM_TAPS.to(device=weight.device, dtype=acc.dtype)
    return torch.einsum("ky,oiyx,lx->iokl", m, acc, m).to(weight.dtype)


def upsample_conv_reference(frames: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """What the sub-pixel conv replaces: ``conv(nearest_2x(frames))``, as diffusers' ``WanResample`` runs it."""
    return conv(F.interpolate(frames, scale_factor=2.0, mode="nearest-exact"))


class SubpixelConvs:
    """The sub-pixel weights of a runtime's resample convs, derived once per conv and kept while the conv's
    weight stays the same tensor, dtype and device (a ``.to()`` or a load makes new ones)."""

    def __init__(self):
        self._weights: dict[int, tuple[tuple, torch.Tensor]] = {}

    def __call__(self, frames: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """``conv(nearest_2x(frames))`` computed on the low-resolution ``frames`` (N, C_in, h, w)."""
        w = conv.weight
        key = (w.data_ptr(), w.dtype, w.device, w._version)
        cached = self._weights.get(id(conv))
        if cached is None or cached[0] != key:
            # channels-last like the frames: cuDNN then keeps the output channels-last whatever it suggests
            fmt = torch.channels_last if frames.is_contiguous(memory_format=torch.channels_last) \
                else torch.contiguous_format
            cached = (key, subpixel_weight(w.detach()).contiguous(memory_format=fmt))
            self._weights[id(conv)] = cached
        return F.conv_transpose2d(frames, cached[1], conv.bias, stride=2, padding=1)

    def clear(self) -> None:
        self._weights.clear()

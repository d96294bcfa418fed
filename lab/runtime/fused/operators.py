"""How each drop-in operator of lab.ops runs inside the fused runtimes: over an input buffer that already
holds its temporal padding (cached or replicated frames in front of the new ones), so the operator's own
``time.apply`` (a cat and a pad) is skipped. Per layer type, as Torch-Pruning dispatches; a new operator adds
its rule here. A rule can leave out the bias of its last conv: cuDNN adds a bias in a kernel of its own, so
the runtime adds it in the kernel that reads the output next (the norm's ``pre_bias``)."""

from __future__ import annotations

import torch

from lab.ops.operators import Conv2Plus1d, DepthwiseSeparable3d, FrameConv2d


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W); a view for channels-last (NDHWC) tensors."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def _unfold(y: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, h, w = y.shape
    return y.reshape(nt // t, t, c, h, w).transpose(1, 2)


def _conv(conv, x: torch.Tensor, bias: bool) -> torch.Tensor:
    """``conv(x)``, without its bias unless ``bias`` (the module's own padding mode; no hooks)."""
    return conv._conv_forward(x, conv.weight, conv.bias if bias else None)


#: Each rule ``(op, x, bias=True)`` is the operator's own forward minus its padding (for FrameConv2d, which
#: mixes no time, the new frames alone); ``bias=False`` leaves out the bias of its last conv, the only one
#: with a bias (BIASED_CONV), for the next kernel to add.
OPERATOR_RULES = {
    DepthwiseSeparable3d: lambda op, x, bias=True: _conv(op.pointwise, op.depthwise(x), bias),
    Conv2Plus1d: lambda op, x, bias=True: _conv(op.temporal, _unfold(op.spatial(_fold(x)), x.shape[2]), bias),
    FrameConv2d: lambda op, x, bias=True: _unfold(_conv(op.conv, _fold(x), bias), x.shape[2]),
}
#: the conv that holds each operator's bias
BIASED_CONV = {DepthwiseSeparable3d: lambda op: op.pointwise, Conv2Plus1d: lambda op: op.temporal,
               FrameConv2d: lambda op: op.conv}

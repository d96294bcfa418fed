"""How each drop-in operator of lab.ops runs inside the fused runtimes: over an input buffer that already
holds its temporal padding (cached or replicated frames in front of the new ones), so the operator's own
``time.apply`` (a cat and a pad) is skipped. Per layer type, as Torch-Pruning dispatches; a new operator adds
its rule here. A rule can leave out the bias of its last conv: cuDNN adds a bias in a kernel of its own, so
the runtime adds it in the kernel that reads the output next (the norm's ``pre_bias``)."""

from __future__ import annotations

import torch

from lab.ops.operators import Conv2Plus1d, DepthwiseSeparable3d, FrameConv2d
from lab.runtime.fused.conv import conv as lab_conv
from lab.runtime.fused.conv import module_conv


def _fold(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W); a view for channels-last (NDHWC) tensors."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def _unfold(y: torch.Tensor, t: int) -> torch.Tensor:
    nt, c, h, w = y.shape
    return y.reshape(nt // t, t, c, h, w).transpose(1, 2)


def run_conv(conv, x: torch.Tensor, bias: bool = True, padded: bool = False) -> torch.Tensor:
    """``conv(x)``, without its bias unless ``bias`` (the module's own padding mode; no hooks). ``padded``: ``x``
    already holds the conv's spatial padding (a fused runtime wrote it into the buffer), so it runs unpadded."""
    b = conv.bias if bias else None
    if not padded:
        return module_conv(conv, x, b)
    return lab_conv(x, conv.weight, b, conv.stride, 0, conv.dilation, conv.groups)


#: Each rule ``(op, x, bias=True, padded=False)`` is the operator's own forward minus its time padding (for
#: FrameConv2d, which mixes no time, the new frames alone); ``bias=False`` leaves out the bias of its last conv,
#: the only one with a bias (BIASED_CONV), for the next kernel to add; ``padded``: ``x`` holds the spatial
#: padding of its spatial conv (SPATIAL_CONV) too.
OPERATOR_RULES = {
    DepthwiseSeparable3d: lambda op, x, bias=True, padded=False: run_conv(op.pointwise, run_conv(op.depthwise, x,
                                                                                             padded=padded), bias),
    Conv2Plus1d: lambda op, x, bias=True, padded=False: run_conv(
        op.temporal, _unfold(run_conv(op.spatial, _fold(x), padded=padded), x.shape[2]), bias),
    FrameConv2d: lambda op, x, bias=True, padded=False: _unfold(run_conv(op.conv, _fold(x), bias, padded), x.shape[2]),
}
#: the conv that holds each operator's bias
BIASED_CONV = {DepthwiseSeparable3d: lambda op: op.pointwise, Conv2Plus1d: lambda op: op.temporal,
               FrameConv2d: lambda op: op.conv}
#: the conv that pads each operator's input in space (the others are 1x1 in space)
SPATIAL_CONV = {DepthwiseSeparable3d: lambda op: op.depthwise, Conv2Plus1d: lambda op: op.spatial,
                FrameConv2d: lambda op: op.conv}

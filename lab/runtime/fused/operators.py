"""How each drop-in operator of lab.ops runs inside the fused runtimes: over an input buffer that already
holds its temporal padding (cached or replicated frames in front of the new ones), so the operator's own
``time.apply`` (a cat and a pad) is skipped. Per layer type, as Torch-Pruning dispatches; a new operator adds
its rule here."""

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


#: Each rule is the operator's own forward minus its padding (for FrameConv2d, which mixes no time, the new
#: frames alone).
OPERATOR_RULES = {
    DepthwiseSeparable3d: lambda op, x: op.pointwise(op.depthwise(x)),
    Conv2Plus1d: lambda op, x: op.temporal(_unfold(op.spatial(_fold(x)), x.shape[2])),
    FrameConv2d: lambda op, x: _unfold(op.conv(_fold(x)), x.shape[2]),
}

"""The fused runtimes' convolutions: ``F.conv3d`` / ``F.conv2d``, except that a float32 3D conv on the CPU goes
to oneDNN (``aten::mkldnn_convolution``) directly.

Why: ATen picks a float32 CPU conv's kernel by a rule written for 2D convs (``ConvParams::use_mkldnn`` in
aten/src/ATen/native/Convolution.cpp): with batch 1, one group and a kernel of 3 or less, oneDNN runs only when
``N*C*D*H`` (the first four sizes: a 5-D input's width is not counted) exceeds 20480; below it ``slow_conv3d``
(im2col + GEMM) runs. A causal step's 3D conv sees the few frames of one step (``D`` = 3 to 6), so at the mini
decoders' sizes nearly every 3D conv takes the slow path. Measured on 2 threads, 3x3x3, channels-last input:

| channels, frames, HxW | slow_conv3d | oneDNN |
|---|---|---|
| 96, 6, 32x32 | 30.6 ms | 6.5 ms |
| 48, 6, 64x64 | 53.0 ms | 6.3 ms |
| 96, 3, 8x8 | 0.43 ms | 0.21 ms |
| 192, 6, 32x32 (over the threshold: oneDNN either way) | 29.5 ms | 29.9 ms |

The same sums in another order: the result is within float32 rounding of ATen's (fused decodes of the minis and
test configs measured 0.5e-6 to 3.7e-6 from eager; tests/runtime holds them to 1e-5). bf16 and fp16 convs already
ran oneDNN, so nothing changes for them, nor on CUDA or the meta device (the trace counts these convs as cuDNN
runs them). Autograd works: the op's backward is ATen's own ``convolution_backward``, so for the same upstream
gradient the gradients are F.conv3d's bit for bit.

``OneDNNConv3d`` (``onednn_conv3d(device)``) is a torch function mode that sends every ``F.conv3d`` call through
``conv`` while it is active, eager diffusers modules included, their hooks untouched. The lab's training loop
(``lab.training.loop.fit``), its channel analysis (``lab.analysis.analyze`` and ``calibration_latents``),
``lab data encode`` and the demo's evaluation run under it on the CPU: the demo's distillation went from 1.8 to
0.7 s a step (mini-wan, 9 frames of 64x64, one thread); 76% of its CPU time had been slow_conv3d, nearly all of
it the frozen teacher's convs. Benchmarks and ``NAME@eager`` decodes keep ATen's choice: that is diffusers as
users run it, the baseline.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter

# FlopCounterMode (lab bench's and lab profile's MACs) knows aten::convolution, not the oneDNN op called directly:
# without a formula, a fused decode's 3D convs would count no MACs.
if torch.ops.aten.mkldnn_convolution not in flop_counter.flop_registry:
    @flop_counter.register_flop_formula(torch.ops.aten.mkldnn_convolution)
    def _onednn_conv_flop(x_shape, w_shape, _bias, *args, out_shape=None, **kwargs) -> int:
        return flop_counter.conv_flop_count(x_shape, w_shape, out_shape, transposed=False)


def _onednn(x: torch.Tensor, weight: torch.Tensor, padding) -> bool:
    return (x.dim() == 5 and x.device.type == "cpu" and x.dtype == torch.float32 and weight.dtype == torch.float32
            and not isinstance(padding, str) and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _triple(v) -> list[int]:
    return [int(i) for i in v] if isinstance(v, (tuple, list)) else [int(v)] * 3


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride=1, padding=0, dilation=1,
         groups: int = 1) -> torch.Tensor:
    """``F.conv3d`` (5-D ``x``) or ``F.conv2d`` (4-D), with a float32 3D conv on the CPU run by oneDNN."""
    if _onednn(x, weight, padding):
        if weight.numel() > x.numel() and not x.is_contiguous() and weight.is_contiguous():
            # oneDNN runs channels-last when either operand is, reordering the other on every call (nothing is
            # cached): a big decoder's weights at a small size are the larger copy, so the input is reordered
            # instead (full-size ltx-2 at 9x128x128: 0.49x eager -> 0.87x; ltx-video 0.60x -> 0.97x).
            x = x.contiguous()
        return torch.ops.aten.mkldnn_convolution(x, weight, bias, _triple(padding), _triple(stride),
                                                 _triple(dilation), groups)
    f = F.conv3d if x.dim() == 5 else F.conv2d
    return f(x, weight, bias, stride, padding, dilation, groups)


def module_conv(layer: nn.Module, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """What ``layer._conv_forward(x, layer.weight, bias)`` computes (its own padding and padding mode; no hooks),
    through ``conv``."""
    if layer.padding_mode != "zeros":
        x = F.pad(x, layer._reversed_padding_repeated_twice, mode=layer.padding_mode)
        padding = 0
    else:
        padding = layer.padding
    return conv(x, layer.weight, bias, layer.stride, padding, layer.dilation, layer.groups)


class OneDNNConv3d(TorchFunctionMode):
    """Runs every ``F.conv3d`` call made while it is active through ``conv``: eager modules too (diffusers' own
    ``Conv3d`` layers call ``F.conv3d``), their hooks and autograd untouched. The mode is popped while its handler
    runs, so ``conv``'s own ``F.conv3d`` is torch's."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.conv3d:
            return conv(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def onednn_conv3d(device) -> contextlib.AbstractContextManager:
    """``OneDNNConv3d`` where it can pay (``device`` is the CPU), else nothing: on CUDA ``conv`` is F's own call and
    the mode would only add a Python call per op."""
    return OneDNNConv3d() if torch.device(device).type == "cpu" else contextlib.nullcontext()

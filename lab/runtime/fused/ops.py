"""The fused runtime's kernels as torch custom ops: each one op in a trace, a profile and torch.compile.

Every op writes into a given ``out`` tensor (the destination-passing style that lets the Wan runtime write
a norm's output straight into the next causal conv's input buffer, behind its cached frames), and has

- a **reference** implementation: the eager module's own arithmetic, op for op, with the same rounding
  points. It runs on the CPU (CPU users never need Triton) and wherever no kernel applies;
- a **fake** (meta) implementation, so ``lab trace`` counts the op once, with its own reads and writes;
- on CUDA, a **Triton kernel** (lab.runtime.fused.triton_kernels) when Triton is importable and the
  tensors' layout fits it (any layout whose spatial dimensions merge into one stride: contiguous NCDHW
  and channels-last alike); otherwise the reference. Its first output in a process is checked against the
  reference on the same input, and a kernel that fails to build or differs is disabled with a warning
  (``triton_kernels.STATUS`` says which ran).

Rounding: in half precision the eager modules round to the tensor dtype after every elementwise op
(normalise in float32 and round, times scale and round, times gamma and round, plus bias and round,
SiLU in float32 and round). The kernels round at the same points, so they differ from eager only by
the summation order of the channel reduction (the last bit of a float32 norm), which almost never changes
a bf16 result. In float32 there is nothing to round and the reference equals eager up to that order.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula

from lab.runtime.fused import triton_kernels

_HALF = (torch.float16, torch.bfloat16)


def _bshape(x: Tensor) -> tuple[int, ...]:
    """(1, C, 1, ...): a per-channel vector broadcast over a channels-first tensor."""
    return (1, -1) + (1,) * (x.ndim - 2)


# ----------------------------------------------------------------------------------------------------
# Wan's RMS norm (+ SiLU): F.normalize over channels * sqrt(C) * gamma + bias.


def folds_conv_bias(x: Tensor, override: Optional[bool] = None) -> bool:
    """Whether a fused runtime runs its convs without their bias and lets the kernel that reads the output add it
    (add_pre_bias, bias_residual_add): where cuDNN runs the convs (CUDA, and the trace's meta device, which models
    it), since cuDNN takes no bias and ATen adds it after the conv in a pass of its own; not on the CPU, whose
    convs add it inside, before rounding (folding there would change the CPU's bf16 result). ``override``: a
    runtime's ``fold_conv_bias`` (tests force it)."""
    return override if override is not None else x.device.type != "cpu"


def add_pre_bias(x: Tensor, pre_bias: Optional[Tensor]) -> Tensor:
    """``x`` + the per-channel bias of the conv that wrote it (run without it: lab.runtime.fused.operators), rounded
    to ``x``'s dtype: what cuDNN's conv does, whose bias ATen adds in a kernel of its own after the conv."""
    return x if pre_bias is None else x + pre_bias.reshape(_bshape(x)).to(x.dtype)


def rms_norm_act_reference(x: Tensor, gamma: Tensor, bias: Optional[Tensor], scale: float, eps: float, act: bool,
                           pre_bias: Optional[Tensor] = None) -> Tensor:
    """Wan's RMS norm (``F.normalize`` over channels * sqrt(C) * gamma + bias) followed by SiLU when ``act``,
    exactly as diffusers computes it; of ``x + pre_bias`` when given."""
    x = add_pre_bias(x, pre_bias)
    shape = _bshape(x)
    normalized = F.normalize(x.float() if x.dtype in _HALF else x, dim=1, eps=eps).to(x.dtype)
    y = normalized * scale * gamma.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return F.silu(y) if act else y


@torch.library.custom_op("lab::rms_norm_act", mutates_args=("out",))
def rms_norm_act_(x: Tensor, gamma: Tensor, bias: Optional[Tensor], scale: float, eps: float, act: bool,
                  out: Tensor, pre_bias: Optional[Tensor] = None) -> None:
    out.copy_(rms_norm_act_reference(x, gamma, bias, scale, eps, act, pre_bias))


@rms_norm_act_.register_fake
def _(x, gamma, bias, scale, eps, act, out, pre_bias=None):
    return None


@rms_norm_act_.register_kernel("cuda")
def _(x, gamma, bias, scale, eps, act, out, pre_bias=None):
    def reference():
        return rms_norm_act_reference(x, gamma, bias, scale, eps, act, pre_bias)
    if not triton_kernels.guarded("rms_norm_act", lambda: triton_kernels.rms_norm_act(
            x, gamma, bias, scale, eps, act, out, pre_bias), reference, out):
        out.copy_(reference())


def rms_norm_act(x: Tensor, gamma: Tensor, bias: Optional[Tensor], scale: float, eps: float = 1e-12,
                 act: bool = True, out: Tensor | None = None, pre_bias: Tensor | None = None) -> Tensor:
    """RMS-normalise ``x`` (N, C, ...) over channels, scale, then SiLU when ``act``; into ``out`` when given
    (any strides, e.g. a slice of a conv's input buffer), else into a new tensor of ``x``'s layout.
    ``pre_bias``: the bias of the conv that wrote ``x`` without it, added first (add_pre_bias)."""
    if out is None:
        out = torch.empty_like(x)
    rms_norm_act_(x, gamma.reshape(-1), None if bias is None else bias.reshape(-1), float(scale), float(eps),
                  bool(act), out, None if pre_bias is None else pre_bias.reshape(-1))
    return out


# ----------------------------------------------------------------------------------------------------
# diffusers' RMSNorm (LTX-Video's norms: x * rsqrt(mean(x^2) + eps) [* weight]) over the channels of a
# channels-first tensor (+ SiLU).


def mean_rms_norm_act_reference(x: Tensor, weight: Optional[Tensor], eps: float, act: bool,
                                pre_bias: Optional[Tensor] = None) -> Tensor:
    """``RMSNorm.forward`` on ``x.movedim(1, -1)`` (as LTX-Video's resnets call it), SiLU when ``act``; of
    ``x + pre_bias`` when given."""
    x = add_pre_bias(x, pre_bias)
    h = x.movedim(1, -1)
    variance = h.to(torch.float32).pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    if weight is not None:
        if weight.dtype in _HALF:
            h = h.to(weight.dtype)
        h = h * weight
    else:
        h = h.to(x.dtype)
    h = h.movedim(-1, 1)
    return F.silu(h) if act else h


@torch.library.custom_op("lab::mean_rms_norm_act", mutates_args=("out",))
def mean_rms_norm_act_(x: Tensor, weight: Optional[Tensor], eps: float, act: bool, out: Tensor,
                       pre_bias: Optional[Tensor] = None) -> None:
    out.copy_(mean_rms_norm_act_reference(x, weight, eps, act, pre_bias))


@mean_rms_norm_act_.register_fake
def _(x, weight, eps, act, out, pre_bias=None):
    return None


@mean_rms_norm_act_.register_kernel("cuda")
def _(x, weight, eps, act, out, pre_bias=None):
    def reference():
        return mean_rms_norm_act_reference(x, weight, eps, act, pre_bias)
    if not triton_kernels.guarded("mean_rms_norm_act", lambda: triton_kernels.mean_rms_norm_act(
            x, weight, eps, act, out, pre_bias), reference, out):
        out.copy_(reference())


def mean_rms_norm_act(x: Tensor, weight: Optional[Tensor], eps: float = 1e-8, act: bool = True,
                      out: Tensor | None = None, pre_bias: Tensor | None = None) -> Tensor:
    if out is None:
        out = torch.empty_like(x)
    mean_rms_norm_act_(x, weight, float(eps), bool(act), out, None if pre_bias is None else pre_bias.reshape(-1))
    return out


# ----------------------------------------------------------------------------------------------------
# LTX-2's channel RMS norm (diffusers' PerChannelRMSNorm: x / sqrt(mean_c(x^2) + eps), and the lab students'
# LTX2RMSNorm, times a per-channel weight) (+ SiLU). Unlike RMSNorm it computes in the tensor's dtype: in half
# precision every step rounds (x^2, the mean, + eps, sqrt, the division, the weight).


def channel_rms_norm_act_reference(x: Tensor, weight: Optional[Tensor], eps: float, act: bool,
                                   pre_bias: Optional[Tensor] = None) -> Tensor:
    """``PerChannelRMSNorm`` (channel dim 1) [times ``weight``], SiLU when ``act``; of ``x + pre_bias`` when given.
    The eager modules' own ops, in their order."""
    x = add_pre_bias(x, pre_bias)
    y = x / torch.sqrt(torch.mean(x ** 2, dim=1, keepdim=True) + eps)
    if weight is not None:
        y = y * weight.reshape(_bshape(x))
    return F.silu(y) if act else y


@torch.library.custom_op("lab::channel_rms_norm_act", mutates_args=("out",))
def channel_rms_norm_act_(x: Tensor, weight: Optional[Tensor], eps: float, act: bool, out: Tensor,
                          pre_bias: Optional[Tensor] = None) -> None:
    out.copy_(channel_rms_norm_act_reference(x, weight, eps, act, pre_bias))


@channel_rms_norm_act_.register_fake
def _(x, weight, eps, act, out, pre_bias=None):
    return None


@channel_rms_norm_act_.register_kernel("cuda")
def _(x, weight, eps, act, out, pre_bias=None):
    def reference():
        return channel_rms_norm_act_reference(x, weight, eps, act, pre_bias)
    if not triton_kernels.guarded("channel_rms_norm_act", lambda: triton_kernels.channel_rms_norm_act(
            x, weight, eps, act, out, pre_bias), reference, out):
        out.copy_(reference())


def channel_rms_norm_act(x: Tensor, weight: Optional[Tensor], eps: float = 1e-8, act: bool = True,
                         out: Tensor | None = None, pre_bias: Tensor | None = None) -> Tensor:
    if out is None:
        out = torch.empty_like(x)
    channel_rms_norm_act_(x, None if weight is None else weight.reshape(-1), float(eps), bool(act), out,
                          None if pre_bias is None else pre_bias.reshape(-1))
    return out


# ----------------------------------------------------------------------------------------------------
# The folded RMS norm of pruned students (lab.models.students.folded_norm: Wan's and LTX's) (+ SiLU).


def folded_rms_norm_act_reference(x: Tensor, gamma: Tensor, bias: Optional[Tensor], quad: Tensor, lin: Tensor,
                                  const: Tensor, eps: float, act: bool, pre_bias: Optional[Tensor] = None) -> Tensor:
    """``WanFoldedRMSNorm.forward`` (channels first) followed by SiLU when ``act``: the teacher's mean square
    estimated from the kept channels as x^T Q x + l^T x + c, all in float32, rounded once; of ``x + pre_bias``
    when given."""
    x = add_pre_bias(x, pre_bias)
    last = x.float().movedim(1, -1)
    ms = ((last @ quad.float()) * last).sum(-1, keepdim=True) + (last @ lin.float()).unsqueeze(-1)
    inv = torch.rsqrt((ms + const.float()).clamp_min(0.0) + eps)
    y = (last * inv).movedim(-1, 1) * gamma.float().reshape(_bshape(x))
    if bias is not None:
        y = y + bias.float().reshape(_bshape(x))
    y = y.to(x.dtype)
    return F.silu(y) if act else y


@torch.library.custom_op("lab::folded_rms_norm_act", mutates_args=("out",))
def folded_rms_norm_act_(x: Tensor, gamma: Tensor, bias: Optional[Tensor], quad: Tensor, lin: Tensor, const: Tensor,
                         eps: float, act: bool, out: Tensor, pre_bias: Optional[Tensor] = None) -> None:
    out.copy_(folded_rms_norm_act_reference(x, gamma, bias, quad, lin, const, eps, act, pre_bias))


@folded_rms_norm_act_.register_fake
def _(x, gamma, bias, quad, lin, const, eps, act, out, pre_bias=None):
    return None


@folded_rms_norm_act_.register_kernel("cuda")
def _(x, gamma, bias, quad, lin, const, eps, act, out, pre_bias=None):
    def reference():
        return folded_rms_norm_act_reference(x, gamma, bias, quad, lin, const, eps, act, pre_bias)
    if not triton_kernels.guarded("folded_rms_norm_act", lambda: triton_kernels.folded_rms_norm_act(
            x, gamma, bias, quad, lin, const, eps, act, out, pre_bias), reference, out):
        out.copy_(reference())


def folded_rms_norm_act(x: Tensor, gamma: Tensor, bias: Optional[Tensor], quad: Tensor, lin: Tensor, const: Tensor,
                        eps: float = 1e-12, act: bool = True, out: Tensor | None = None,
                        pre_bias: Tensor | None = None) -> Tensor:
    if out is None:
        out = torch.empty_like(x)
    folded_rms_norm_act_(x, gamma.reshape(-1), None if bias is None else bias.reshape(-1), quad, lin,
                         const.reshape(()), float(eps), bool(act), out,
                         None if pre_bias is None else pre_bias.reshape(-1))
    return out


# ----------------------------------------------------------------------------------------------------
# The end of a resnet as cuDNN and ATen run it, in one pass: conv2's output plus its bias, plus the shortcut
# (the block input, or a 1x1 conv's output plus its bias).


def bias_residual_add_reference(y: Tensor, y_bias: Optional[Tensor], h: Tensor, h_bias: Optional[Tensor]) -> Tensor:
    """``(y + y_bias) + (h + h_bias)``, each add rounded to the dtype: a conv's bias added after it (as ATen does
    after a cuDNN conv, which takes none), then the residual."""
    return add_pre_bias(y, y_bias) + add_pre_bias(h, h_bias)


@torch.library.custom_op("lab::bias_residual_add", mutates_args=("out",))
def bias_residual_add_(y: Tensor, y_bias: Optional[Tensor], h: Tensor, h_bias: Optional[Tensor], out: Tensor) -> None:
    out.copy_(bias_residual_add_reference(y, y_bias, h, h_bias))


@bias_residual_add_.register_fake
def _(y, y_bias, h, h_bias, out):
    return None


@bias_residual_add_.register_kernel("cuda")
def _(y, y_bias, h, h_bias, out):
    def reference():
        return bias_residual_add_reference(y, y_bias, h, h_bias)
    if not triton_kernels.guarded("bias_residual_add", lambda: triton_kernels.bias_residual_add(
            y, y_bias, h, h_bias, out), reference, out):
        out.copy_(reference())


def bias_residual_add(y: Tensor, y_bias: Tensor | None, h: Tensor, h_bias: Tensor | None = None,
                      out: Tensor | None = None) -> Tensor:
    """``(y + y_bias) + (h + h_bias)`` (per-channel biases of the convs that wrote ``y`` and ``h`` without them)
    in one pass, into ``out`` (a new tensor of ``y``'s layout when None)."""
    if out is None:
        out = torch.empty_like(y)
    bias_residual_add_(y, None if y_bias is None else y_bias.reshape(-1), h,
                       None if h_bias is None else h_bias.reshape(-1), out)
    return out


# ----------------------------------------------------------------------------------------------------
# Wan's temporal upsampler: time_conv's (N, 2C, t, h, w) output interleaved into 2t frames of C channels,
# each frame upsampled 2x (nearest), as frames (N*2t, C, 2h, 2w) ready for the per-frame resample conv.


def interleave_upsample_reference(y: Tensor, out: Tensor, bias: Tensor | None = None) -> None:
    """``WanResample``'s reshape + stack of the time conv's halves, the frames folded into the batch, then
    ``WanUpsample`` (nearest-exact 2x, which is a gather: done in the tensor's dtype, bit-identical to
    diffusers' float32 round trip). ``bias``: the time conv's, added first and rounded to the dtype as ATen's
    pass after a cuDNN conv adds it (where the conv ran without it, ``folds_conv_bias``)."""
    n, c2, t, h, w = y.shape
    c = c2 // 2
    if bias is not None:
        y = (y + bias.view(1, c2, 1, 1, 1)).to(y.dtype)  # one rounding to y's dtype, as an in-place add_ does
    frames = y.reshape(n, 2, c, t, h, w).permute(0, 3, 1, 2, 4, 5).reshape(n * t * 2, c, h, w)
    out.copy_(F.interpolate(frames, scale_factor=2.0, mode="nearest-exact"))


@torch.library.custom_op("lab::interleave_upsample", mutates_args=("out",))
def interleave_upsample_(y: Tensor, out: Tensor, bias: Tensor | None = None) -> None:
    interleave_upsample_reference(y, out, bias)


@interleave_upsample_.register_fake
def _(y, out, bias=None):
    return None


@interleave_upsample_.register_kernel("cuda")
def _(y, out, bias=None):
    def reference():
        ref = torch.empty_like(out)
        interleave_upsample_reference(y, ref, bias)
        return ref
    if not triton_kernels.guarded("interleave_upsample", lambda: triton_kernels.interleave_upsample(y, out, bias),
                                  reference, out):
        interleave_upsample_reference(y, out, bias)


def interleave_upsample(y: Tensor, memory_format=torch.channels_last, bias: Tensor | None = None) -> Tensor:
    n, c2, t, h, w = y.shape
    out = torch.empty(n * t * 2, c2 // 2, 2 * h, 2 * w, dtype=y.dtype, device=y.device, memory_format=memory_format)
    interleave_upsample_(y, out, bias)
    return out


def interleave(y: Tensor, memory_format=torch.channels_last, bias: Tensor | None = None) -> Tensor:
    """``WanResample``'s reshape + stack alone: time_conv's (N, 2C, t, h, w) output as 2t frames (N*2t, C, h, w),
    one strided copy (the input of a sub-pixel resample conv, lab.runtime.fused.subpixel, which upsamples
    itself). A plain aten op: it moves each element once, which is all a kernel could do. ``bias``: the time
    conv's, added in the same pass (an ``add`` into the frames instead of the copy), rounded as ATen's own
    pass after a cuDNN conv would round it."""
    n, c2, t, h, w = y.shape
    c = c2 // 2
    out = torch.empty(n * t * 2, c, h, w, dtype=y.dtype, device=y.device, memory_format=memory_format)
    dst, src = out.view(n, t, 2, c, h, w), y.unflatten(1, (2, c)).permute(0, 3, 1, 2, 4, 5)
    if bias is None:
        dst.copy_(src)
    else:
        torch.add(src, bias.view(1, 1, 2, c, 1, 1), out=dst)
    return out


# The folded norm's quadratic form is matmul work that eager counts (x @ Q, x @ l); counted here too, so a
# fused decoder's MACs (lab bench, lab trace) equal its eager decoder's.
@register_flop_formula(torch.ops.lab.folded_rms_norm_act)
def _folded_flops(x_shape, *args, **kwargs) -> int:
    c = x_shape[1]
    positions = 1
    for i, s in enumerate(x_shape):
        positions *= s if i != 1 else 1
    return 2 * positions * c * (c + 1)

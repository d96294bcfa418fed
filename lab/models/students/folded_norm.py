"""RMS norms for pruned channel groups that divide by the *teacher's* full-width rms, estimated from the
kept channels.

A pruned group keeps channels S of the teacher's C; the dropped ones are reconstructed (least squares,
fitted by pruning on recorded activations) as x_D ~= W x_S + b with mean residual energy e, so

    C * rms^2 = ||x_S||^2 + ||x_D||^2 ~= ||x_S||^2 + ||W x_S + b||^2 + e = x_S^T Q x_S + l^T x_S + c,

with Q = (I + W^T W) / C, l = 2 W^T b / C, c = (||b||^2 + e) / C (``quad``, ``lin``, ``const``; see
lab.prune.transfer.folded_norm_state). Why not a plain RMS norm over x_S (even with gamma rescaled): the
rms of a few kept channels varies per position far more than the full-width rms (with 2 channels it is
nearly a sign function), which distorts everything downstream.

``folded_mean_square`` is the shared estimate; ``FoldedRMSNorm`` is the channels-last form (LTX, as
diffusers' RMSNorm); each family builds its own on these helpers (Wan's channels-first one lives with the
Wan family, lab.families.wan.student).

Precision: the form is a difference of large terms (x^T Q x + l^T x + c with l pointing against x), so
in bf16 it can come out negative, clamp to 0 and divide by sqrt(eps). Both norms therefore keep
``quad``/``lin``/``const`` in float32 whatever dtype the module is cast to, and compute in float32
with autocast off, returning the input's dtype.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

_FORM = ("quad", "lin", "const")


def folded_mean_square(x: torch.Tensor, quad: torch.Tensor, lin: torch.Tensor, const: torch.Tensor) -> torch.Tensor:
    """The teacher's mean square over all channels, estimated from channels-last kept channels ``x``
    (float32); shape (..., 1). Clamped at 0 (a ridge fit can make the form slightly indefinite)."""
    ms = ((x @ quad.float()) * x).sum(-1, keepdim=True) + (x @ lin.float()).unsqueeze(-1)
    return (ms + const.float()).clamp_min(0.0)


def _init_form(module: nn.Module, dim: int) -> None:
    # Identity form = plain rms over the kept channels, until pruning sets the fit.
    module.register_buffer("quad", torch.eye(dim) / dim)
    module.register_buffer("lin", torch.zeros(dim))
    module.register_buffer("const", torch.zeros(()))


def _apply_keeping_form_fp32(module: nn.Module, apply, fn, recurse: bool):
    """nn.Module._apply that lets ``.to(torch.bfloat16)`` / ``.half()`` move the form's buffers but not
    narrow them: they are re-made in float32 from the values they had before the cast."""
    before = {n: module._buffers[n] for n in _FORM}
    out = apply(fn, recurse)
    for n, old in before.items():
        new = module._buffers[n]
        if new is not None and new.is_floating_point() and torch.finfo(new.dtype).bits < 32:
            module._buffers[n] = old.to(device=new.device, dtype=torch.float32)
    return out


def _fp32(x: torch.Tensor):
    """Autocast off: it would run the form's matmuls in bf16, whatever dtype their inputs have."""
    dev = x.device.type
    return torch.autocast(dev, enabled=False) if torch.amp.is_autocast_available(dev) else nullcontext()


class FoldedRMSNorm(nn.Module):
    """Channels-last folded RMS norm with a per-channel weight (LTX students; parameter names as
    diffusers' RMSNorm)."""

    def __init__(self, dim: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        _init_form(self, dim)

    def _apply(self, fn, recurse=True):
        return _apply_keeping_form_fp32(self, super()._apply, fn, recurse)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _fp32(x):
            xf = x.float()
            ms = folded_mean_square(xf, self.quad, self.lin, self.const)
            return (xf * torch.rsqrt(ms + self.eps) * self.weight.float()).to(x.dtype)

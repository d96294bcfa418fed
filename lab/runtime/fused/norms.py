"""Which fused op runs a decoder's norm (+ SiLU): per norm type, as Torch-Pruning dispatches per layer type.

- Wan's ``WanRMS_norm`` (x / ||x|| * sqrt(C) * gamma + bias): ``lab::rms_norm_act``;
- diffusers' ``RMSNorm`` (LTX-Video: x * rsqrt(mean(x^2) + eps) [* weight]): ``lab::mean_rms_norm_act``;
- the folded norms of pruned students (lab.models.students.folded_norm: Wan's with ``gamma``, LTX's with
  ``weight``; both carry the ``quad``/``lin``/``const`` form): ``lab::folded_rms_norm_act``.

The folded norms are recognised by their form's buffers (they live in lab.models, above this package).
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm
from diffusers.models.normalization import RMSNorm
from torch import nn

from lab.errors import LabError
from lab.runtime.fused.ops import folded_rms_norm_act, mean_rms_norm_act, rms_norm_act


def is_folded(norm: nn.Module) -> bool:
    return all(isinstance(getattr(norm, k, None), torch.Tensor) for k in ("quad", "lin", "const"))


def fusable_norm(norm: nn.Module) -> bool:
    """True when ``norm_act`` has an op for ``norm``."""
    if is_folded(norm):
        return True
    if isinstance(norm, WanRMS_norm):
        return norm.channel_first and not (isinstance(norm.bias, float) and norm.bias != 0.0)
    return type(norm) is RMSNorm and getattr(norm, "bias", None) is None


def norm_act(norm: nn.Module, x: torch.Tensor, act: bool, out: torch.Tensor | None = None) -> torch.Tensor:
    """``norm`` over the channels of channels-first ``x`` (N, C, ...), then SiLU when ``act``, as one kernel;
    into ``out`` when given."""
    if not fusable_norm(norm):
        raise LabError(f"the fused runtime has no kernel for a {type(norm).__name__}")
    if is_folded(norm):
        gamma = norm.gamma if hasattr(norm, "gamma") else norm.weight
        bias = getattr(norm, "bias", None)
        bias = bias if isinstance(bias, torch.Tensor) else None
        return folded_rms_norm_act(x, gamma, bias, norm.quad, norm.lin, norm.const, norm.eps, act, out)
    if isinstance(norm, WanRMS_norm):
        bias = norm.bias if isinstance(norm.bias, torch.Tensor) else None
        return rms_norm_act(x, norm.gamma, bias, norm.scale, 1e-12, act, out)
    return mean_rms_norm_act(x, norm.weight, norm.eps, act, out)

"""Which fused op runs a decoder's norm (+ SiLU): per norm class, as Torch-Pruning dispatches per layer type.

Generic here: diffusers' ``RMSNorm`` (x * rsqrt(mean(x^2) + eps) [* weight], LTX-Video's norms) runs
``lab::mean_rms_norm_act``, and the folded norms of pruned students (lab.models.students.folded_norm;
recognised by their ``quad``/``lin``/``const`` form, with a ``gamma`` or a ``weight``) run
``lab::folded_rms_norm_act``. Each VAE family registers its own norm classes (``register_norm_kernel``:
Wan's RMS norm runs ``lab::rms_norm_act``).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers.models.normalization import RMSNorm
from torch import nn

from lab.errors import LabError
from lab.plugins import load_families
from lab.runtime.fused.ops import folded_rms_norm_act, mean_rms_norm_act

#: norm class -> (can this instance be fused?, run(norm, x, act, out, pre_bias) -> out)
NORM_KERNELS: dict[type, tuple[Callable[[nn.Module], bool], Callable]] = {}


def register_norm_kernel(cls: type, run: Callable, accepts: Callable[[nn.Module], bool] | None = None) -> None:
    """``run(norm, x, act, out, pre_bias)``: the fused op for ``cls`` norms over the channels of channels-first
    ``x`` (plus ``pre_bias`` per channel first, when not None: lab.runtime.fused.ops.add_pre_bias; then SiLU
    when ``act``), into ``out`` (a new tensor when None). ``accepts(norm)``: whether this instance's settings
    are covered (default: all)."""
    NORM_KERNELS[cls] = (accepts or (lambda norm: True), run)


def is_folded(norm: nn.Module) -> bool:
    return all(isinstance(getattr(norm, k, None), torch.Tensor) for k in ("quad", "lin", "const"))


def _run_folded(norm, x, act, out, pre_bias=None):
    gamma = norm.gamma if hasattr(norm, "gamma") else norm.weight
    bias = getattr(norm, "bias", None)
    return folded_rms_norm_act(x, gamma, bias if isinstance(bias, torch.Tensor) else None, norm.quad, norm.lin,
                               norm.const, norm.eps, act, out, pre_bias)


def _run_mean(norm, x, act, out, pre_bias=None):
    return mean_rms_norm_act(x, norm.weight, norm.eps, act, out, pre_bias)


register_norm_kernel(RMSNorm, _run_mean, accepts=lambda norm: getattr(norm, "bias", None) is None)


def _kernel(norm: nn.Module):
    if is_folded(norm):
        return _run_folded
    load_families()
    entry = NORM_KERNELS.get(type(norm))  # the exact class: a subclass may compute something else
    return entry[1] if entry is not None and entry[0](norm) else None


def fusable_norm(norm: nn.Module) -> bool:
    """True when ``norm_act`` has an op for ``norm``."""
    return _kernel(norm) is not None


def norm_act(norm: nn.Module, x: torch.Tensor, act: bool, out: torch.Tensor | None = None,
             pre_bias: torch.Tensor | None = None) -> torch.Tensor:
    """``norm`` over the channels of channels-first ``x`` (N, C, ...), then SiLU when ``act``, as one kernel;
    into ``out`` when given. ``pre_bias``: the bias of the conv that wrote ``x`` without it, added first (the
    add cuDNN would run as a kernel of its own)."""
    run = _kernel(norm)
    if run is None:
        raise LabError(f"the fused runtime has no kernel for a {type(norm).__name__}")
    return run(norm, x, act, out, pre_bias)

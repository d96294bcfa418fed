"""What the layer-level parts of the lab need to know about Wan's diffusers layers: how operators read its
causal conv (lab.ops), what the profiler calls each layer (lab.ops.profiler), which norms analysis records a
full Gram for (lab.analysis.groups), and which fused kernel runs its RMS norm (lab.runtime.fused.norms)."""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanRMS_norm
from torch import nn

from lab.analysis.groups import register_full_gram_norms
from lab.errors import LabError
from lab.ops.operators import TimePadding, register_conv_reader
from lab.ops.profiler import register_op_types
from lab.runtime.fused.norms import register_norm_kernel
from lab.runtime.fused.ops import rms_norm_act


def read_causal_conv(layer: nn.Module) -> tuple[nn.Module, tuple[int, int], TimePadding]:
    """``WanCausalConv3d(x, cache_x)``: zeros in front (2 * pad frames, none after), which ``cache_x`` replaces."""
    pads = layer._padding  # (w, w, h, h, 2*pt, 0)
    if pads[2] != pads[3] or pads[0] != pads[1]:
        raise LabError(f"WanCausalConv3d with asymmetric spatial padding {pads[:4]} cannot be replaced; keep it.")
    return layer, (pads[2], pads[0]), TimePadding("zeros-cached", pads[4], pads[5])


def _fused_rms_norm(norm: nn.Module, x, act: bool, out, pre_bias=None):
    # F.normalize over channels * sqrt(C) * gamma + bias, Wan's rounding points (lab.runtime.fused.ops)
    bias = norm.bias if not isinstance(norm.bias, float) else None
    return rms_norm_act(x, norm.gamma, bias, norm.scale, 1e-12, act, out, pre_bias)


register_conv_reader(WanCausalConv3d, read_causal_conv)
register_op_types({"WanCausalConv3d": "causal_conv3d", "WanAttentionBlock": "attention", "WanRMS_norm": "norm",
                   "WanUpsample": "upsample"})
register_full_gram_norms("WanRMS_norm")
register_norm_kernel(WanRMS_norm, _fused_rms_norm,
                     accepts=lambda norm: norm.channel_first and not (isinstance(norm.bias, float) and norm.bias != 0.0))

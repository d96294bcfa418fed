"""What the layer-level parts of the lab need to know about LTX-2's diffusers layers: how operators read its
causal conv (lab.ops; its causality is a call argument), what the profiler calls its layers (lab.ops.profiler),
and which norms analysis records a full Gram for (lab.analysis.groups): the teacher's weightless
``PerChannelRMSNorm`` and the students' ``LTX2RMSNorm``, whose pruned forms estimate the full channels'
energy from the kept ones."""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d
from torch import nn

from lab.analysis.groups import register_full_gram_norms
from lab.errors import LabError
from lab.ops.operators import TimePadding, register_conv_reader
from lab.ops.profiler import register_op_types


def read_causal_conv(layer: nn.Module) -> tuple[nn.Module, tuple[int, int], TimePadding]:
    """``LTX2VideoCausalConv3d(x, causal=True)``: LTX-Video's replicate padding in time, chosen per call, and
    space padded by the wrapped conv ('reflect' by default)."""
    # Causality is a call argument; the default (the layer's own, causal=True) is replaced by the
    # decoder's setting in conv_spec(layer, causal).
    conv = layer.conv
    if conv.padding_mode not in ("zeros", "reflect"):
        raise LabError(f"LTX2VideoCausalConv3d with padding_mode={conv.padding_mode!r} cannot be replaced; keep it.")
    return conv, (conv.padding[1], conv.padding[2]), TimePadding.replicate(layer.kernel_size[0], True)


register_conv_reader(LTX2VideoCausalConv3d, read_causal_conv, causal_per_call=True)
register_op_types({"LTX2VideoCausalConv3d": "causal_conv3d", "PerChannelRMSNorm": "norm"})
register_full_gram_norms("PerChannelRMSNorm", "LTX2RMSNorm")

"""What the layer-level parts of the lab need to know about LTX-Video's diffusers layers: how operators read its
causal conv (lab.ops) and what the profiler calls it (lab.ops.profiler). Its norms are diffusers' own
``RMSNorm`` and ``LayerNorm``, which analysis and the fused runtime know already."""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d
from torch import nn

from lab.errors import LabError
from lab.ops.operators import TimePadding, register_conv_reader
from lab.ops.profiler import register_op_types


def read_causal_conv(layer: nn.Module) -> tuple[nn.Module, tuple[int, int], TimePadding]:
    """``LTXVideoCausalConv3d(x)``: time padded by repeating the edge frames, in front only (``is_causal``) or
    on both sides (the decoder's default); space padded by the wrapped conv."""
    conv = layer.conv
    kt = layer.kernel_size[0]
    time = (TimePadding("replicate-causal", kt - 1, 0) if layer.is_causal
            else TimePadding("replicate-symmetric", (kt - 1) // 2, (kt - 1) // 2))
    if conv.padding_mode != "zeros":
        raise LabError(f"LTXVideoCausalConv3d with padding_mode={conv.padding_mode!r} cannot be replaced (operators "
                       f"pad space with zeros); keep it.")
    return conv, (conv.padding[1], conv.padding[2]), time


register_conv_reader(LTXVideoCausalConv3d, read_causal_conv)
register_op_types({"LTXVideoCausalConv3d": "causal_conv3d"})

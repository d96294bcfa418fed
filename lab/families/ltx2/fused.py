"""The fused runtime for LTX-2 decoders (registered for the LTX-2 family; lab.runtime.fused): diffusers'
``AutoencoderKLLTX2Video`` and the lab's pruned, operator-swapped students of it, on the same weights, whole
clips or streamed chunks (lab.families.ltx2.stream).

Where eager's traffic goes (``lab trace --decoders ltx-2``): the weightless ``PerChannelRMSNorm`` + SiLU, six
passes in the tensor's dtype; each causal conv's ``repeat`` + ``cat`` of its edge frames, then the reflect
pad of the whole input; and cuDNN's bias add after every conv. Each resnet whose norms have a kernel runs
as LTX-Video's (lab.families.ltx.fused), with LTX-2's differences:

- norm + SiLU as one kernel (``lab::channel_rms_norm_act``, rounding where the eager ops round), written
  straight into the interior of the next conv's input buffer, channels-last;
- the buffer holds the conv's time padding (edge frames replicated, chosen per call by ``causal``; or, in a
  stream, the previous chunk's last frames) and, for a conv that pads space with 'reflect', that padding too,
  filled by copying the buffer's own rows and columns: no ``cat``, no ``reflection_pad3d``;
- where cuDNN runs the convs (CUDA, and the trace), the convs run without their biases: norm2's kernel adds
  conv1's, and one residual kernel adds conv2's and the 1x1 shortcut's.

The head's norm_out + SiLU is one kernel too. Resnets with timestep conditioning or noise injection keep their
eager forward, as do the upsamplers and conv_in / conv_out. Installed like the others (fused ``forward``s on the resnet instances, removed by ``uninstall``);
inference only.
"""

from __future__ import annotations

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import (LTX2VideoCausalConv3d, LTX2VideoResnetBlock3d,
                                                               PerChannelRMSNorm)
from torch import nn

from lab.errors import LabError
from lab.families.ltx.fused import FusedLTX, replicate_edges
from lab.families.ltx2.arch import LTX2
from lab.families.ltx2.stream import active_stream_cache
from lab.families.ltx2.student import LTX2RMSNorm, LTX2StudentResnetBlock3d
from lab.ops.operators import SwapOp
from lab.runtime.fused import register_fused_runtime
from lab.runtime.fused.conv import conv
from lab.runtime.fused.norms import fusable_norm, norm_act, register_norm_kernel
from lab.runtime.fused.operators import SPATIAL_CONV
from lab.runtime.fused.ops import channel_rms_norm_act


def _run_channel_norm(norm, x, act, out, pre_bias=None):
    return channel_rms_norm_act(x, getattr(norm, "weight", None), norm.eps, act, out, pre_bias)


# The teacher's weightless norm (over dim 1 only: its forward ignores a channel_dim argument) and the students'
# weighted one; their folded form (LTX2FoldedRMSNorm) runs lab::folded_rms_norm_act (lab.runtime.fused.norms).
register_norm_kernel(PerChannelRMSNorm, _run_channel_norm, accepts=lambda norm: norm.channel_dim == 1)
register_norm_kernel(LTX2RMSNorm, _run_channel_norm)


def _kernel_frames(conv: nn.Module) -> int:
    """The frames a conv or operator reads per output frame (1: it mixes no time)."""
    if isinstance(conv, SwapOp):
        return 1 if conv.temporal_mixing == "none" else conv.time.front + conv.time.back + 1
    return conv.kernel_size[0]


def _reflect_pad(conv: nn.Module) -> tuple[int, int] | None:
    """(h, w) spatial padding the buffer holds for a conv (or an operator's spatial conv) that pads space with
    'reflect' (it then runs without padding), or None (zeros: the conv pads inside its kernel, no copy)."""
    spatial = conv.conv if isinstance(conv, LTX2VideoCausalConv3d) else SPATIAL_CONV[type(conv)](conv)
    if spatial.padding_mode != "reflect":
        return None
    return tuple(spatial.padding[-2:])


def _fill_reflect(buf: torch.Tensor, ph: int, pw: int) -> None:
    """Reflect padding in place: the border rows and columns of ``buf`` (N, C, T, H + 2ph, W + 2pw) from its
    interior, as F.pad(mode='reflect') computes them (columns first, then rows over the full width: corners)."""
    w, h = buf.shape[4] - 2 * pw, buf.shape[3] - 2 * ph
    for k in range(1, pw + 1):
        buf[..., ph:ph + h, pw - k].copy_(buf[..., ph:ph + h, pw + k])
        buf[..., ph:ph + h, pw + w - 1 + k].copy_(buf[..., ph:ph + h, pw + w - 1 - k])
    for k in range(1, ph + 1):
        buf[..., ph - k, :].copy_(buf[..., ph + k, :])
        buf[..., ph + h - 1 + k, :].copy_(buf[..., ph + h - 1 - k, :])


class FusedLTX2(FusedLTX):
    """The fused runtime state of one LTX-2 VAE (teacher or student): LTX-Video's (lab.families.ltx.fused)
    with LTX-2's classes, its padded conv inputs (causality per call, streams, reflect padding), its plain 1x1
    shortcut conv (whose bias folds too) and its head."""

    RESNETS = (LTX2VideoResnetBlock3d, LTX2StudentResnetBlock3d)
    CONV = LTX2VideoCausalConv3d
    FAMILY = "LTX-2"

    def __init__(self, vae: nn.Module, memory_format=torch.channels_last_3d, graphs: bool = False,
                 subpixel: bool = False):
        super().__init__(vae, memory_format, graphs, subpixel)
        # the stream's cache keys: each conv's path in the decoder (lab.families.ltx2.stream.streaming)
        self.paths = {id(m): path for path, m in vae.decoder.named_modules()}

    def _install_head(self) -> None:
        dec = self.vae.decoder
        if _fusable_head(dec):
            # norm_out + SiLU as one kernel (conv_act passes it through); conv_out stays the model's, so the
            # stream's cache for it (lab.families.ltx2.stream) works unchanged
            for m, fwd in ((dec.norm_out, self._norm_out), (dec.conv_act, self._conv_act)):
                m.forward = fwd
                self.installed[m] = fwd

    def _norm_out(self, x: torch.Tensor, channel_dim=None) -> torch.Tensor:
        return norm_act(self.vae.decoder.norm_out, x, True)

    def _normed_conv(self, norm: nn.Module, conv: nn.Module, x: torch.Tensor, causal: bool | None,
                     pre_bias: torch.Tensor | None = None, bias: bool = True) -> torch.Tensor:
        """conv(SiLU(norm(x + pre_bias))) with the norm's output written into the conv's padded input (the time
        padding the call's ``causal`` asks for, or a stream's cached frames; a 'reflect' spatial padding);
        without the conv's bias unless ``bias``."""
        causal = True if causal is None else causal  # diffusers' LTX2VideoResnetBlock3d default
        kt = _kernel_frames(conv)
        cache = active_stream_cache(self.vae.decoder)
        if cache is not None and not causal:
            raise LabError("streaming needs a causal LTX-2 decoder (decoder_causal=True)")
        front, back = (kt - 1, 0) if causal else ((kt - 1) // 2, (kt - 1) // 2)
        ph, pw = _reflect_pad(conv) or (0, 0)
        n, c, t, h, w = x.shape
        buf = torch.empty(n, c, front + t + back, h + 2 * ph, w + 2 * pw, dtype=x.dtype, device=x.device,
                          memory_format=self.memory_format)
        inner = buf[:, :, :, ph:ph + h, pw:pw + w]  # the frames as the conv's input, before spatial padding
        norm_act(norm, x, True, inner[:, :, front:front + t], pre_bias=pre_bias)
        key = self.paths[id(conv)]
        prev = cache.get(key) if cache is not None and front else None
        if prev is not None:  # the previous chunk's last input frames, as the eager stream keeps them
            inner[:, :, :front].copy_(prev)
            replicate_edges(inner, 0, front + t, back)
        else:
            replicate_edges(inner, front, t, back)
        if cache is not None and front:
            cache[key] = inner[:, :, t:t + front]
        if ph or pw:
            _fill_reflect(buf, ph, pw)
        return self._conv_over(conv, buf, bias, padded=bool(ph or pw))

    def _shortcut(self, block: nn.Module, inputs: torch.Tensor, fold: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        # LTX-2's shortcut conv is a plain 1x1 nn.Conv3d: folded, its bias goes to the residual kernel too
        if block.norm3 is not None:
            inputs = block.norm3(inputs.movedim(1, -1)).movedim(-1, 1)
        sc = block.conv_shortcut
        if sc is None:
            return inputs, None
        return conv(inputs, sc.weight, None if fold else sc.bias), (sc.bias if fold else None)


def _fusable_head(dec: nn.Module) -> bool:
    """norm_out + SiLU with no timestep conditioning between them."""
    return getattr(dec, "time_embedder", None) is None and fusable_norm(dec.norm_out) \
        and isinstance(getattr(dec, "conv_act", None), nn.SiLU)


# Not the default anywhere yet: on the CPU ltx-2-tiny gains (1.8x at 25x256x256, 1 thread) but the full-size
# ltx-2 loses (0.77x at 9x128x128, random weights, 2 threads), and no GPU has timed it.
register_fused_runtime(LTX2.name, FusedLTX2, FusedLTX2.check)

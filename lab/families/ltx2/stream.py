"""Streaming a causal LTX-2 decoder (``AutoencoderKLLTX2Video`` with ``decoder_causal``, the default, and
the lab's students of it): latent frames in chunks, with the same output as one whole-clip decode.

Why it is exact: in causal mode every ``LTX2VideoCausalConv3d`` pads time with its first input frame
repeated ``kt - 1`` times in front and nothing after, so output frame t reads input frames t-kt+1..t
(clamped at 0). Keeping the last ``kt - 1`` frames of each conv's (padded) input sequence and putting
them in front of the next chunk's input gives every conv the windows it has in a whole-clip decode.
Everything else is per frame (the channel RMS norms, the LayerNorm and 1x1 shortcuts, the timestep
conditioning, the final unpatchify), except the depth-to-space upsamplers, which drop the first
``stride_t - 1`` output frames of the clip: on the first chunk only. Operators swapped in by the lab
(lab.ops) take the cache as ``cache_x`` (their causal replicate padding then pads nothing).

Noise injection (``decoder_inject_noise``) draws new noise on every call, so a decoder that uses it is
random either way; the default config has none.
"""

from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d, LTX2VideoUpsampler3d
from torch import nn

from lab.errors import LabError


def _d2s(x: torch.Tensor, stride, shape) -> torch.Tensor:
    b, _, f, h, w = shape
    x = x.reshape(b, -1, stride[0], stride[1], stride[2], f, h, w)
    return x.permute(0, 1, 5, 2, 6, 3, 7, 4).flatten(6, 7).flatten(4, 5).flatten(2, 3)


def _conv_forward(m: LTX2VideoCausalConv3d, cache: dict, key: str):
    kt = m.kernel_size[0]

    def forward(x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if not causal:
            raise LabError("streaming needs a causal LTX-2 decoder (decoder_causal=True)")
        prev = cache.get(key)
        front = prev if prev is not None else x[:, :, :1].repeat(1, 1, kt - 1, 1, 1)
        seq = torch.cat([front, x], dim=2)
        cache[key] = seq[:, :, seq.shape[2] - (kt - 1):]
        return m.conv(seq)
    return forward


def _op_forward(m: nn.Module, cache: dict, key: str):
    kt = m.kernel_size[0]
    orig = m.forward

    def forward(x: torch.Tensor, cache_x: torch.Tensor | None = None, causal: bool | None = True) -> torch.Tensor:
        if causal is False:
            raise LabError("streaming needs a causal LTX-2 decoder (decoder_causal=True)")
        prev = cache.get(key)
        front = prev if prev is not None else x[:, :, :1].repeat(1, 1, kt - 1, 1, 1)
        seq = torch.cat([front, x], dim=2)
        cache[key] = seq[:, :, seq.shape[2] - (kt - 1):]
        return orig(x, cache_x=prev, causal=True)
    return forward


def _upsampler_forward(m: LTX2VideoUpsampler3d, first: bool):
    orig = m.forward

    def forward(x: torch.Tensor, causal: bool = True) -> torch.Tensor:
        if first:
            return orig(x, causal=causal)
        # diffusers' LTX2VideoUpsampler3d.forward without dropping the clip's first stride_t - 1 frames.
        s = m.stride
        out = _d2s(m.conv(x, causal=causal), s, x.shape)
        if m.residual:
            res = _d2s(x, s, x.shape).repeat(1, (s[0] * s[1] * s[2]) // m.upscale_factor, 1, 1, 1)
            out = out + res
        return out
    return forward


#: decoder -> the cache of the stream chunk it is decoding now (the fused runtime's convs read and update it:
#: lab.families.ltx2.fused, whose resnets call no conv forward)
_ACTIVE: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def active_stream_cache(decoder: nn.Module) -> dict | None:
    """The cache of the stream chunk ``decoder`` is decoding (conv path -> last input frames), or None outside
    ``streaming``."""
    return _ACTIVE.get(decoder)


@contextmanager
def streaming(decoder: nn.Module, cache: dict, first: bool):
    """Within the block, ``decoder`` (an ``LTX2VideoDecoder3d`` or a student of it) decodes one chunk of a
    stream: its causal convs read and update ``cache`` (conv path -> last input frames), and its
    upsamplers drop the clip's leading frames only when ``first``."""
    _ACTIVE[decoder] = cache
    patched = []
    for path, m in decoder.named_modules():
        if isinstance(m, LTX2VideoCausalConv3d):
            m.forward = _conv_forward(m, cache, path)
        elif getattr(getattr(m, "time", None), "mode", None) in ("replicate-causal", "replicate-symmetric") \
                and hasattr(m, "kernel_size"):  # an operator swapped in for an LTX2VideoCausalConv3d (lab.ops)
            m.forward = _op_forward(m, cache, path)
        elif isinstance(m, LTX2VideoUpsampler3d):
            m.forward = _upsampler_forward(m, first)
        else:
            continue
        patched.append(m)
    try:
        yield
    finally:
        _ACTIVE.pop(decoder, None)
        for m in patched:
            del m.forward  # back to the class's forward

"""LTX-2's structure: diffusers' ``AutoencoderKLLTX2Video`` (the LTX-2 video VAE; its diffusers defaults are the
released model) and the lab's pruned students of it.

What is the same as LTX-Video (lab.families.ltx.arch), so the channel map is ``ltx_groups`` unchanged: conv_in ->
mid block -> up blocks -> norm_out -> conv_out; resnets norm1 -> conv1 -> norm2 -> conv2 with an
identity shortcut (or LayerNorm -> 1x1 conv when the width changes); depth-to-space upsamplers with
stride (2, 2, 2), residual, with ``upsample_factor`` 2 (the upsampler halves the width, so no up block
has a width-changing ``conv_in`` resnet); optional timestep conditioning, decoded as LTX-Video's.

What differs: three up blocks (all upsampling: up0 at 1/16 of the output resolution, up1 at 1/8, up2
at 1/4, i.e. LTX-Video's up1..up3), the conv class ``LTX2VideoCausalConv3d`` (causality is a call
argument, ``forward(x, causal=True)``, set by the decoder's ``is_causal``; ``decoder_causal`` defaults
to True), spatial padding 'reflect', weightless channels-first RMS norms (``PerChannelRMSNorm``), and a
plain ``nn.Conv3d`` for the 1x1 shortcut. Causal here means replicated first frames in front; diffusers
decodes the whole clip at once, and the lab streams causal decoders chunk by chunk by keeping each causal
conv's last input frames (lab.families.ltx2.stream), which swapped-in operators take as ``cache_x``
(``frame_cache`` True: swaps probe that contract).
"""

from __future__ import annotations

from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d, LTX2VideoUpsampler3d
from torch import nn

from lab.arch import register_architecture
from lab.families.ltx.arch import LTXArchitecture


class LTX2Architecture(LTXArchitecture):
    name = "ltx-2"
    title = "LTX-2"
    tiny_teacher = "ltx-2-tiny"
    flash_vaed_ratio = 0.25  # as LTX-Video: the last two up blocks (up1, up2 here) at 25%
    # LTX-Video's Flash-VAED plan moved onto LTX-2's three up blocks by resolution: the low-resolution
    # stages (mid, up0 = LTX-Video's up1) get depthwise-separable 3D convs, up1 (LTX-Video's up2) keeps
    # its layers, the full-resolution up2 (LTX-Video's up3) gets per-frame 2D convs.
    plans = {"flash-vaed": {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "keep", "up2": "conv2d"},
             "keep": {}}
    causal_convs = (LTX2VideoCausalConv3d,)
    kept_subtrees = (LTX2VideoUpsampler3d,)  # depth-to-space convs (the LTX-2 VAE has no attention)
    frame_cache = True  # streaming (lab.families.ltx2.stream) hands operators the previous input frames

    def owns(self, vae: nn.Module) -> bool:
        # diffusers' AutoencoderKLLTX2Video or a lab student of it
        return type(vae).__name__ in ("AutoencoderKLLTX2Video", "LTX2StudentVAE")

    def is_causal(self, vae: nn.Module) -> bool:
        # AutoencoderKLLTX2Video.decode(causal=None) -> the decoder's own setting.
        return bool(getattr(vae.decoder, "is_causal", False))


LTX2 = register_architecture(LTX2Architecture())

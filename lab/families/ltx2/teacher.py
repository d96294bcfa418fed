"""LTX-2's teacher: any ``AutoencoderKLLTX2Video`` behind the lab's decoder interface (the released LTX-2 video VAE,
tiny test configs), LTX-Video's adapter with LTX-2's latent geometry, causality and streaming."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLLTX2Video

from lab.families.ltx.teacher import LTXDecoderAdapter
from lab.families.ltx2.arch import LTX2
from lab.families.ltx2.stream import streaming
from lab.models.interface import DecoderStream, LatentGeometry
from lab.models.registry import register_adapter

# The diffusers defaults of AutoencoderKLLTX2Video are the released LTX-2 video VAE (decoder 528.4M
# parameters: widths 1024 -> 512 -> 256 -> 128, 5 resnets per block). The tiny config keeps every
# structural feature (causal reflect-padded convs, three residual depth-to-space up blocks that halve
# the width, 128 latent channels, 32x spatial / 8x temporal compression); only widths and depths shrink.
LTX2_CONFIG: dict = {}
LTX2_TINY_CONFIG = {
    "block_out_channels": (8, 16, 32, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_block_out_channels": (16, 32, 64),
    "decoder_layers_per_block": (1, 1, 1, 1),
}


def ltx2_geometry(tc) -> LatentGeometry:
    """Latent geometry from an AutoencoderKLLTX2Video config (a dict or its FrozenDict), read off the
    decoder: ``patch_size`` times the upsamplers' strides. (The model's own ``spatial_compression_ratio``
    comes from the *encoder's* scaling flags unless the config sets it, which gives 64x / 16x for the
    default config although the VAE compresses 32x / 8x.)"""
    n = len(tc["decoder_block_out_channels"])
    scaling = tc.get("decoder_spatio_temporal_scaling", True)
    scaling = (scaling,) * n if isinstance(scaling, bool) else tuple(scaling)
    kinds = tuple(tc.get("upsample_type") or ("spatiotemporal",) * n)
    t = s = 1
    for on, kind in zip(scaling, kinds):
        if on:
            t *= 2 if kind in ("temporal", "spatiotemporal") else 1
            s *= 2 if kind in ("spatial", "spatiotemporal") else 1
    return LatentGeometry(tc["latent_channels"], (tc.get("patch_size_t", 1) * t, tc.get("patch_size", 4) * s,
                                                  tc.get("patch_size", 4) * s))


class LTX2DecoderAdapter(LTXDecoderAdapter):
    """Any ``AutoencoderKLLTX2Video`` (LTX-2, tiny test configs).

    Normalization as LTX-2 pipelines apply it (the latents_mean / latents_std buffers and
    ``scaling_factor``): raw = z * latents_std / scaling_factor + latents_mean. Models with timestep
    conditioning are decoded at ``decode_timestep`` (default 0.0) as LTX-Video's.

    The decoder is causal in time when ``decoder_causal`` (the default): its convs pad time with the
    first frame repeated in front, so an output frame never depends on later latent frames. Such
    decoders (``causal`` True) also ``stream()``: chunks of latent frames in, their new frames out, the
    same video as ``decode`` (lab.families.ltx2.stream keeps each causal conv's last input frames).
    Non-causal ones (``decoder_causal=False``) decode whole clips only.
    """

    vae_class = AutoencoderKLLTX2Video
    adapter_kind = "ltx-2"
    arch = LTX2

    def __init__(self, name: str, vae: AutoencoderKLLTX2Video, family: str = "teacher",
                 decode_timestep: float = 0.0):
        super().__init__(name, vae, family, decode_timestep)
        self.causal = LTX2.is_causal(vae)

    @staticmethod
    def _geometry(vae) -> LatentGeometry:
        # From the config, not the model's compression ratios (see ltx2_geometry).
        return ltx2_geometry(vae.config)

    def stream(self) -> "LTX2Stream":
        return LTX2Stream(self) if self.causal else super().stream()


class LTX2Stream(DecoderStream):
    """Causal LTX-2 decoding in chunks (teachers and students): every push takes k >= 1 latent frames and
    yields their new frames (1 + 8(k-1) on the first push, 8k after). Pushing a clip in any chunking gives
    what ``decode`` gives, up to float summation order (lab.families.ltx2.stream)."""

    def __init__(self, adapter):
        self.adapter = adapter
        self.reset()

    def reset(self) -> None:
        self.cache: dict = {}
        self.frames_done = 0

    @torch.no_grad()
    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        a = self.adapter
        a.check_latents(z_t)
        with streaming(a.vae.decoder, self.cache, first=self.frames_done == 0):
            out = a._decode_raw(a.denormalize(z_t))
        self.frames_done += z_t.shape[2]
        return out.clamp(-1.0, 1.0)


register_adapter(LTX2DecoderAdapter.adapter_kind, LTX2DecoderAdapter)

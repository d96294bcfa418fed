"""Wan 2.1's teacher: any ``AutoencoderKLWan`` behind the lab's decoder interface (the released VAE, the lab's
mini-wan, tiny test configs), streamed causally with diffusers' own feature cache."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from lab.errors import LatentShapeError
from lab.families.wan.arch import WAN
from lab.families.wan.chunked import decode_wan_chunked, decoder_step
from lab.models.adapters import VAETeacherAdapter
from lab.models.interface import DecoderStream, LatentGeometry
from lab.models.registry import register_adapter

# The diffusers defaults *are* the released model: the Wan 2.1 VAE (decoder 73.3M parameters).
WAN21_CONFIG: dict = {}
# A tiny config of the same class and latent geometry, for tests and quick experiments: every structural
# feature is kept (causal convs, RMS norms, mid attention, temporal upsampling); only widths shrink.
WAN_TINY_CONFIG = {"base_dim": 8, "z_dim": 16}


def wan_geometry(config) -> LatentGeometry:
    t = config.scale_factor_temporal or 2 ** sum(config.temperal_downsample)
    s = config.scale_factor_spatial or 8
    return LatentGeometry(config.z_dim, (t, s, s))


class WanDecoderAdapter(VAETeacherAdapter):
    """Any ``AutoencoderKLWan``: Wan 2.1, the lab's mini-wan, tiny test configs.

    Latent normalization comes from ``config.latents_mean`` / ``latents_std`` (as Wan pipelines
    apply them): raw = z * std + mean.
    """

    vae_class = AutoencoderKLWan
    causal = True
    chunkable = True  # lab.runtime.chunked: its decode honours chunk_frames
    adapter_kind = "wan"
    arch = WAN

    def __init__(self, name: str, vae: AutoencoderKLWan, family: str = "teacher"):
        cfg = vae.config
        super().__init__(name, vae, family, wan_geometry(cfg), cfg.latents_mean, cfg.latents_std)

    def decoder_modules(self):
        return [self.vae.post_quant_conv, self.vae.decoder]

    def _decode_raw(self, z):
        # lab.runtime.chunked: the same result as diffusers' loop, fewer calls, and one preallocated output
        # instead of diffusers' growing torch.cat (which the fused runtime has no reason to keep)
        if self.chunk_frames > 1 or self.fused is not None:
            return decode_wan_chunked(self.vae, z, self.chunk_frames).clamp(-1.0, 1.0)  # diffusers clamps too
        return self.vae.decode(z).sample

    def _encode_raw(self, video, sample, generator):
        dist = self.vae.encode(video).latent_dist
        return dist.sample(generator) if sample else dist.mode()

    def stream(self) -> "WanStream":
        return WanStream(self)


class WanStream(DecoderStream):
    """Causal decoding with Wan's own feature cache (the last two input frames of every causal conv).
    The first push takes one latent frame and yields 1 frame; later pushes take k >= 1 latent frames and
    yield 4k. Pushing a whole clip frame by frame gives exactly what ``decode`` gives (several frames
    per push: the same up to float summation order, see lab.runtime.chunked)."""

    def __init__(self, adapter: WanDecoderAdapter):
        self.adapter = adapter
        self.reset()

    def reset(self) -> None:
        self.adapter.vae.clear_cache()
        self.frames_done = 0

    @torch.no_grad()
    def push(self, z_t: torch.Tensor) -> torch.Tensor:
        a = self.adapter
        a.check_latents(z_t)
        if self.frames_done == 0 and z_t.shape[2] != 1:
            raise LatentShapeError(f"{a.name}: the first push() takes one latent frame (N, C, 1, H, W), got "
                                   f"{z_t.shape[2]} frames (Wan decodes the first latent frame on its own); later "
                                   f"pushes may carry several frames.")
        out = decoder_step(a.vae, a.vae.post_quant_conv(a.denormalize(z_t)), first_chunk=self.frames_done == 0)
        self.frames_done += z_t.shape[2]
        return out.clamp(-1.0, 1.0)


register_adapter(WanDecoderAdapter.adapter_kind, WanDecoderAdapter)

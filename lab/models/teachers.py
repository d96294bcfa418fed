"""Teacher adapters over diffusers' own video VAEs: ``AutoencoderKLWan`` and ``AutoencoderKLLTXVideo``.

The lab never re-implements these models; it wraps them behind :class:`VideoDecoder` so that every
other part of the lab (analysis, pruning, profiling, distillation, evaluation) sees one interface.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLLTXVideo, AutoencoderKLWan

from lab.errors import LatentShapeError
from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.runtime.chunked import decode_wan_chunked, decoder_step

# --- configs ---------------------------------------------------------------------------------------
# The diffusers defaults *are* the released models: Wan 2.1 VAE (decoder 73.3M parameters) and
# LTX-Video 0.9 VAE (decoder 238.8M).
WAN21_CONFIG: dict = {}
LTX09_CONFIG: dict = {}

# Tiny configs of the same classes and the same latent geometry, for tests and quick experiments.
# Every structural feature is kept (causal convs, RMS norms, mid attention, temporal upsampling;
# LTX's depth-to-space upsamplers and 128 latent channels); only widths and depths shrink.
WAN_TINY_CONFIG = {"base_dim": 8, "z_dim": 16}
LTX_TINY_CONFIG = {
    "block_out_channels": (8, 16, 32, 32),
    "decoder_block_out_channels": (8, 16, 32, 32),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
}


def wan_geometry(config) -> LatentGeometry:
    t = config.scale_factor_temporal or 2 ** sum(config.temperal_downsample)
    s = config.scale_factor_spatial or 8
    return LatentGeometry(config.z_dim, (t, s, s))


class WanDecoderAdapter(VideoDecoder):
    """Any ``AutoencoderKLWan``: Wan 2.1, the lab's mini-wan, tiny test configs.

    Latent normalization comes from ``config.latents_mean`` / ``latents_std`` (as Wan pipelines
    apply them): raw = z * std + mean.
    """

    causal = True
    adapter_kind = "wan"

    def __init__(self, name: str, vae: AutoencoderKLWan, family: str = "teacher"):
        cfg = vae.config
        super().__init__(name, wan_geometry(cfg), cfg.latents_mean, cfg.latents_std)
        self.family = family
        self.vae = vae

    @property
    def has_encoder(self) -> bool:
        return self.vae.encoder is not None

    def decoder_modules(self):
        return [self.vae.post_quant_conv, self.vae.decoder]

    def _decode_raw(self, z):
        if self.chunk_frames > 1:  # lab.runtime.chunked: the same result as diffusers' loop, fewer calls
            return decode_wan_chunked(self.vae, z, self.chunk_frames).clamp(-1.0, 1.0)  # diffusers clamps too
        return self.vae.decode(z).sample

    def _encode_raw(self, video, sample, generator):
        dist = self.vae.encode(video).latent_dist
        return dist.sample(generator) if sample else dist.mode()

    def stream(self) -> "WanStream":
        return WanStream(self)

    def _save_model(self, folder: Path) -> None:
        self.vae.save_pretrained(folder, safe_serialization=True)

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "WanDecoderAdapter":
        return cls(meta["name"], AutoencoderKLWan.from_pretrained(str(folder)), meta.get("family", "teacher"))


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


def ltx_decode(vae, z: torch.Tensor, decode_timestep: float) -> torch.Tensor:
    """Raw latents -> video through an LTX-Video VAE (the teacher's or a student's): timestep-conditioned
    models decode at ``decode_timestep``, the others take no conditioning."""
    temb = None
    if vae.config.timestep_conditioning:
        temb = torch.full((z.shape[0],), decode_timestep, device=z.device, dtype=z.dtype)
    return vae.decode(z, temb).sample


class LTXDecoderAdapter(VideoDecoder):
    """Any ``AutoencoderKLLTXVideo`` (LTX-Video 0.9 and later, the lab's mini-ltx, tiny configs).

    Normalization as LTX pipelines apply it: raw = z * latents_std / scaling_factor + latents_mean.
    The decoder is not causal (it sees all latent frames at once), so there is no ``stream()``.
    Models with timestep conditioning (0.9.1+) are decoded at ``decode_timestep`` (default 0.0, the
    pipelines' default) without added noise.
    """

    causal = False
    adapter_kind = "ltx"

    def __init__(self, name: str, vae: AutoencoderKLLTXVideo, family: str = "teacher",
                 decode_timestep: float = 0.0):
        geometry = LatentGeometry(vae.config.latent_channels,
                                  (vae.temporal_compression_ratio, vae.spatial_compression_ratio,
                                   vae.spatial_compression_ratio))
        super().__init__(name, geometry, vae.latents_mean.float().cpu(), vae.latents_std.float().cpu(),
                         vae.config.scaling_factor)
        self.family = family
        self.vae = vae
        self.decode_timestep = decode_timestep

    @property
    def has_encoder(self) -> bool:
        return self.vae.encoder is not None

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return ltx_decode(self.vae, z, self.decode_timestep)

    def _encode_raw(self, video, sample, generator):
        dist = self.vae.encode(video).latent_dist
        return dist.sample(generator) if sample else dist.mode()

    def _save_model(self, folder: Path) -> None:
        self.vae.save_pretrained(folder, safe_serialization=True)

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "LTXDecoderAdapter":
        return cls(meta["name"], AutoencoderKLLTXVideo.from_pretrained(str(folder)), meta.get("family", "teacher"))

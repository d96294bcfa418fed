"""Teacher adapters over diffusers' own video VAEs: ``AutoencoderKLWan``, ``AutoencoderKLLTXVideo`` and
``AutoencoderKLLTX2Video`` (LTX-2).

The lab never re-implements these models; it wraps them behind :class:`VideoDecoder` so that every
other part of the lab (analysis, pruning, profiling, distillation, evaluation) sees one interface.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLLTX2Video, AutoencoderKLLTXVideo, AutoencoderKLWan

from lab.arch import LTX, LTX2, WAN
from lab.errors import LatentShapeError
from lab.models.interface import DecoderStream, LatentGeometry, VideoDecoder
from lab.runtime.chunked import decode_wan_chunked, decoder_step
from lab.runtime.ltx2_stream import streaming as ltx2_streaming

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


class VAETeacherAdapter(VideoDecoder):
    """Base of the teacher adapters over one diffusers-style VAE (Wan, LTX-Video, LTX-2, TAEF2), held as
    ``self.vae``. Subclasses set ``vae_class`` (what ``from_saved`` reloads) and pass their latent geometry
    and normalization up; saved folders are the VAE's own diffusers folder."""

    vae_class: type = None

    def __init__(self, name: str, vae, family: str, geometry: LatentGeometry, latents_mean=None,
                 latents_std=None, scaling_factor: float = 1.0):
        super().__init__(name, geometry, latents_mean, latents_std, scaling_factor)
        self.family = family
        self.vae = vae

    @property
    def has_encoder(self) -> bool:
        return self.vae.encoder is not None

    def _save_model(self, folder: Path) -> None:
        self.vae.save_pretrained(folder, safe_serialization=True)

    @classmethod
    def from_saved(cls, folder: Path, meta: dict) -> "VAETeacherAdapter":
        return cls(meta["name"], cls.vae_class.from_pretrained(str(folder)), meta.get("family", "teacher"))


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


class LTXDecoderAdapter(VAETeacherAdapter):
    """Any ``AutoencoderKLLTXVideo`` (LTX-Video 0.9 and later, the lab's mini-ltx, tiny configs).

    Normalization as LTX pipelines apply it: raw = z * latents_std / scaling_factor + latents_mean.
    The decoder is not causal (it sees all latent frames at once), so there is no ``stream()``.
    Models with timestep conditioning (0.9.1+) are decoded at ``decode_timestep`` (default 0.0, the
    pipelines' default) without added noise.
    """

    vae_class = AutoencoderKLLTXVideo
    causal = False
    adapter_kind = "ltx"
    arch = LTX

    def __init__(self, name: str, vae: AutoencoderKLLTXVideo, family: str = "teacher",
                 decode_timestep: float = 0.0):
        # A model on the meta device (lab trace) has no statistics to read: identity normalisation.
        stats = (None, None) if vae.latents_mean.is_meta else (vae.latents_mean.float().cpu(),
                                                               vae.latents_std.float().cpu())
        super().__init__(name, vae, family, self._geometry(vae), *stats, vae.config.scaling_factor)
        self.decode_timestep = decode_timestep

    @staticmethod
    def _geometry(vae) -> LatentGeometry:
        return LatentGeometry(vae.config.latent_channels,
                              (vae.temporal_compression_ratio, vae.spatial_compression_ratio,
                               vae.spatial_compression_ratio))

    def decoder_modules(self):
        return [self.vae.decoder]

    def _decode_raw(self, z):
        return self.arch.decode_raw(self.vae, z, self.decode_timestep)

    def _encode_raw(self, video, sample, generator):
        dist = self.vae.encode(video).latent_dist
        return dist.sample(generator) if sample else dist.mode()


# --- LTX-2 ------------------------------------------------------------------------------------------
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
    same video as ``decode`` (lab.runtime.ltx2_stream keeps each causal conv's last input frames).
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
    what ``decode`` gives, up to float summation order (lab.runtime.ltx2_stream)."""

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
        with ltx2_streaming(a.vae.decoder, self.cache, first=self.frames_done == 0):
            out = a._decode_raw(a.denormalize(z_t))
        self.frames_done += z_t.shape[2]
        return out.clamp(-1.0, 1.0)

"""A diffusers-compatible VAE facade around any lab decoder, so a student can replace ``pipe.vae`` in
diffusers' Wan and LTX-Video pipelines.

Those pipelines denormalise latents themselves and then call ``vae.decode(raw_latents, ...)``. What
they read from the VAE, and what the facade provides:
- Wan (``WanPipeline``): ``config.latents_mean``/``latents_std``/``z_dim``, ``config.scale_factor_temporal``/
  ``scale_factor_spatial``, ``dtype``, the device of its parameters, and
  ``decode(z, return_dict=False)[0]``.
- LTX-Video (``LTXPipeline``): ``latents_mean``/``latents_std`` tensors, ``config.scaling_factor``,
  ``config.timestep_conditioning``, ``spatial_compression_ratio``/``temporal_compression_ratio`` and
  ``decode(z, temb, return_dict=False)[0]``.
``decode`` returns ``DecoderOutput(sample=video)`` in [-1, 1], like the diffusers VAEs.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.vae import DecoderOutput
from diffusers.models.modeling_utils import ModelMixin

from lab.errors import LabError
from lab.models.interface import VideoDecoder


class DiffusersVAE(ModelMixin, ConfigMixin):
    """Wraps a lab :class:`~lab.models.interface.VideoDecoder` behind diffusers' VAE decode API.

    Build it with :meth:`from_decoder` (or :func:`as_diffusers_vae`). It has no encoder: pipelines
    that encode (video-to-video, image-to-video conditioning) need the teacher's VAE for that part."""

    @register_to_config
    def __init__(self, z_dim: int = 16, latents_mean: list | None = None, latents_std: list | None = None,
                 scale_factor_temporal: int = 4, scale_factor_spatial: int = 8, scaling_factor: float = 1.0,
                 timestep_conditioning: bool = False, decoder_name: str = ""):
        super().__init__()
        self.decoder = None
        self.spatial_compression_ratio = scale_factor_spatial
        self.temporal_compression_ratio = scale_factor_temporal

    # LTX pipelines read latents_mean/std as tensors on the VAE, Wan pipelines as lists in its config;
    # properties serve the first from the second (a class attribute wins over ConfigMixin's lookup).
    @property
    def latents_mean(self) -> torch.Tensor:
        z = self.config.z_dim
        return torch.zeros(z) if self.config.latents_mean is None else torch.tensor(self.config.latents_mean)

    @property
    def latents_std(self) -> torch.Tensor:
        z = self.config.z_dim
        return torch.ones(z) if self.config.latents_std is None else torch.tensor(self.config.latents_std)

    @classmethod
    def from_decoder(cls, decoder: VideoDecoder) -> "DiffusersVAE":
        if not isinstance(decoder, VideoDecoder):
            raise LabError(f"as_diffusers_vae takes a lab decoder (lab.models.load_decoder(...)), got "
                           f"{type(decoder).__name__}")
        g = decoder.geometry
        vae = cls(z_dim=g.channels, latents_mean=decoder.latents_mean.flatten().tolist(),
                  latents_std=decoder.latents_std.flatten().tolist(), scale_factor_temporal=g.t,
                  scale_factor_spatial=g.spatial, scaling_factor=decoder.scaling_factor, decoder_name=decoder.name)
        vae.decoder = decoder  # already on its device and dtype; the facade has no tensors of its own
        return vae

    @torch.no_grad()
    def decode(self, z: torch.Tensor, temb: torch.Tensor | None = None, return_dict: bool = True):
        """Raw (denormalised) latents, as the pipelines pass them -> video in [-1, 1]. ``temb`` (LTX
        timestep conditioning) is accepted for the signature and must be None: lab decoders are not
        timestep-conditioned."""
        if temb is not None:
            raise LabError(f"{self.decoder.name} is not timestep-conditioned; load the pipeline's VAE with "
                           f"timestep_conditioning=False (the facade's config says so) or decode without temb.")
        self.decoder.check_latents(z)
        video = self.decoder._decode_raw(z).clamp(-1.0, 1.0)
        return DecoderOutput(sample=video) if return_dict else (video,)

    def forward(self, z: torch.Tensor, return_dict: bool = True):
        return self.decode(z, return_dict=return_dict)


def as_diffusers_vae(decoder: VideoDecoder | str) -> DiffusersVAE:
    """``pipe.vae = as_diffusers_vae(student)``: a lab decoder (object, name or saved folder) as a
    diffusers VAE for decoding."""
    if isinstance(decoder, str):
        from lab.models import load_decoder
        decoder = load_decoder(decoder)
    return DiffusersVAE.from_decoder(decoder)


def tiny_wan_pipeline(vae, text_dim: int = 32, num_layers: int = 1, seed: int = 0):
    """A real ``diffusers.WanPipeline`` around ``vae`` (an ``AutoencoderKLWan`` or ``as_diffusers_vae(...)``)
    with a tiny random transformer (the one of diffusers' own WanPipeline tests) and no text encoder: call it
    with ``prompt_embeds`` of shape (B, L, text_dim). Its videos are what a random denoiser makes; it exists
    to show and test the VAE slot offline, where the decoding step is exactly the production one."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline, WanTransformer3DModel

    z = int(vae.config.z_dim)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=z, out_channels=z,
        text_dim=text_dim, freq_dim=256, ffn_dim=32, num_layers=num_layers, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32)
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return pipe

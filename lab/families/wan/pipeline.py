"""Wan's side of the diffusers facade (lab.models.diffusers_compat): ``AutoencoderKLWan``'s API for a lab decoder
of Wan latents, and a tiny real ``WanPipeline`` to show and test the VAE slot offline."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from lab.models.diffusers_compat import DiffusersVAE, register_facade


@register_facade
class WanDiffusersVAE(DiffusersVAE):
    """The facade of a Wan-family decoder: ``AutoencoderKLWan``'s API (tiling defaults 256/192 pixels)."""

    family = "wan"
    latent_channels = (16, 48)  # Wan 2.1's and Wan 2.2's latent spaces
    _default_tiles = (256, 192)

    @classmethod
    def teacher_classes(cls) -> tuple[type, ...]:
        return (AutoencoderKLWan,)  # Wan 2.1 and 2.2 share it

    def _init_tiling(self) -> None:
        # AutoencoderKLWan's defaults.
        self.tile_sample_min_height = 256
        self.tile_sample_min_width = 256
        self.tile_sample_stride_height = 192
        self.tile_sample_stride_width = 192

    def enable_tiling(self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
                      tile_sample_stride_height: float | None = None,
                      tile_sample_stride_width: float | None = None) -> None:
        """As ``AutoencoderKLWan.enable_tiling``: decode (and encode) in spatial tiles of ``tile_sample_min_*``
        pixels at stride ``tile_sample_stride_*`` when the video is larger than one tile. Unset values keep
        their current setting."""
        self.use_tiling = True
        self.tile_sample_min_height = tile_sample_min_height or self.tile_sample_min_height
        self.tile_sample_min_width = tile_sample_min_width or self.tile_sample_min_width
        self.tile_sample_stride_height = tile_sample_stride_height or self.tile_sample_stride_height
        self.tile_sample_stride_width = tile_sample_stride_width or self.tile_sample_stride_width
        self._check_tiles()


def tiny_wan_pipeline(vae, text_dim: int = 32, num_layers: int = 1, seed: int = 0):
    """A real ``diffusers.WanPipeline`` around ``vae`` (an ``AutoencoderKLWan`` or ``as_diffusers_vae(...)``)
    with a tiny random transformer (the one of diffusers' own WanPipeline tests) and no text encoder: call it
    with ``prompt_embeds`` of shape (B, L, text_dim). Its videos are what a random denoiser makes; it exists
    to show and test the VAE slot offline, where the decoding step is exactly the production one."""
    # deferred: the Wan pipeline classes need transformers (the 'pipelines' extra)
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

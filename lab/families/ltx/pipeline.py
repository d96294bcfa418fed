"""LTX-Video's side of the diffusers facade (lab.models.diffusers_compat): ``AutoencoderKLLTXVideo``'s API for a lab
decoder of LTX latents (LTX-Video's and LTX-2's: LTX-2's VAE has the same API and normalisation, and its family
adds its class here, lab.families.ltx2.pipeline)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLLTXVideo

from lab.errors import ConfigError
from lab.models.diffusers_compat import DiffusersVAE, blend_t, register_facade


@register_facade
class LTXDiffusersVAE(DiffusersVAE):
    """The facade of an LTX-Video-family decoder: ``AutoencoderKLLTXVideo``'s API (tiling defaults 512/448
    pixels, 16/8 frames for framewise decoding)."""

    family = "ltx"
    latent_channels = (128,)  # LTX-Video's (and LTX-2's) latent space
    _default_tiles = (512, 448)
    #: the diffusers VAE classes whose encoder serves this API; families with LTX-Video's API add theirs
    #: (``add_teacher_class``)
    _teachers: list[type] = [AutoencoderKLLTXVideo]

    @classmethod
    def teacher_classes(cls) -> tuple[type, ...]:
        return tuple(cls._teachers)

    @classmethod
    def add_teacher_class(cls, vae_class: type) -> None:
        if vae_class not in cls._teachers:
            cls._teachers.append(vae_class)

    def _init_tiling(self) -> None:
        # AutoencoderKLLTXVideo's defaults.
        self.use_framewise_encoding = False
        self.use_framewise_decoding = False
        self.num_sample_frames_batch_size = 16
        self.num_latent_frames_batch_size = 2
        self.tile_sample_min_height = 512
        self.tile_sample_min_width = 512
        self.tile_sample_min_num_frames = 16
        self.tile_sample_stride_height = 448
        self.tile_sample_stride_width = 448
        self.tile_sample_stride_num_frames = 8

    def enable_tiling(self, tile_sample_min_height: int | None = None, tile_sample_min_width: int | None = None,
                      tile_sample_min_num_frames: int | None = None, tile_sample_stride_height: float | None = None,
                      tile_sample_stride_width: float | None = None,
                      tile_sample_stride_num_frames: float | None = None) -> None:
        """As ``AutoencoderKLLTXVideo.enable_tiling``: spatial tiles of ``tile_sample_min_*`` pixels at stride
        ``tile_sample_stride_*``; the frame window settings apply when ``use_framewise_decoding`` is set."""
        self.use_tiling = True
        self.tile_sample_min_height = tile_sample_min_height or self.tile_sample_min_height
        self.tile_sample_min_width = tile_sample_min_width or self.tile_sample_min_width
        self.tile_sample_min_num_frames = tile_sample_min_num_frames or self.tile_sample_min_num_frames
        self.tile_sample_stride_height = tile_sample_stride_height or self.tile_sample_stride_height
        self.tile_sample_stride_width = tile_sample_stride_width or self.tile_sample_stride_width
        self.tile_sample_stride_num_frames = tile_sample_stride_num_frames or self.tile_sample_stride_num_frames
        self._check_tiles()

    def _tiling_attributes(self) -> tuple[str, ...]:
        return super()._tiling_attributes() + ("use_framewise_encoding", "use_framewise_decoding",
                                               "tile_sample_min_num_frames", "tile_sample_stride_num_frames")

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        t = self.temporal_compression_ratio
        if self.use_framewise_decoding and z.shape[2] > self.tile_sample_min_num_frames // t:
            return self._temporal_tiled_decode(z)
        return super()._decode(z)

    def _temporal_tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        """diffusers' ``AutoencoderKLLTXVideo._temporal_tiled_decode``: overlapping windows of latent frames
        (each spatially tiled when tiling is on), the overlap blended over ``min - stride`` frames."""
        t = self.temporal_compression_ratio
        num_sample_frames = (z.shape[2] - 1) * t + 1
        min_frames = self.tile_sample_min_num_frames // t
        stride_frames = self.tile_sample_stride_num_frames // t
        if stride_frames < 1 or min_frames < stride_frames:
            raise ConfigError(f"tile_sample_min_num_frames={self.tile_sample_min_num_frames} and "
                              f"tile_sample_stride_num_frames={self.tile_sample_stride_num_frames} must cover at least "
                              f"{t} frames each (the temporal compression), stride <= size (e.g. 16 and 8).")
        blend_frames = self.tile_sample_min_num_frames - self.tile_sample_stride_num_frames
        row = []
        for i in range(0, z.shape[2], stride_frames):
            tile = z[:, :, i:i + min_frames + 1]
            decoded = self._tiled_decode(tile) if self._wants_tiles(tile) else self.decoder._decode_raw(tile)
            if i > 0:
                decoded = decoded[:, :, :-1]
            row.append(decoded)
        out = []
        for i, tile in enumerate(row):
            if i > 0:
                out.append(blend_t(row[i - 1], tile, blend_frames)[:, :, :self.tile_sample_stride_num_frames])
            else:
                out.append(tile[:, :, :self.tile_sample_stride_num_frames + 1])
        return torch.cat(out, dim=2)[:, :, :num_sample_frames]

    def forward(self, sample: torch.Tensor, temb: torch.Tensor | None = None, sample_posterior: bool = False,
                return_dict: bool = True, generator: torch.Generator | None = None):
        """As ``AutoencoderKLLTXVideo.forward`` (``temb`` must be None: lab decoders are not timestep-conditioned)."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        return self.decode(z, temb, return_dict=return_dict)

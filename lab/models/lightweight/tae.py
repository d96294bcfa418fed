"""TAE-192 and TAE-Temporal: tiny-autoencoder decoders (diffusers ``DecoderTiny`` layout) for any
latent space, built from diffusers' own ``AutoencoderTinyBlock`` and, for TAE-Temporal, diffusers'
``MidBlockTemporalDecoder`` (the spatio-temporal block of Stable Video Diffusion's temporal decoder:
2D resnet + kernel-3 temporal resnet blended by a learned alpha, then per-frame spatial attention).

Layout (identical to ``DecoderTiny`` when all widths are equal, which the tests check):
``tanh(z/3)*3 -> conv_in -> act -> for each stage: blocks, [upsample, conv] | final conv -> RGB``.
We build the layer list ourselves instead of instantiating ``DecoderTiny`` because the video
variants insert a frame expansion (see ``temporal.py``) after the first stage and TAE-Temporal inserts
its mid block after the first upsample; ``DecoderTiny`` is one opaque ``nn.Sequential``.
"""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.activations import get_activation
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.unets.unet_2d_blocks import AutoencoderTinyBlock
from diffusers.models.unets.unet_3d_blocks import MidBlockTemporalDecoder
from torch import nn

from lab.errors import ConfigError
from lab.models.lightweight.temporal import FrameExpansion, fold_frames, unfold_frames


class TinyVideoDecoder(ModelMixin, ConfigMixin):
    """Per-frame tiny decoder. ``temporal_mid_layers > 0`` makes it TAE-Temporal (not causal: the
    temporal kernel is centred); otherwise it is causal (each frame sees its own latent frame only).
    """

    config_name = "config.json"

    @register_to_config
    def __init__(self, latent_channels: int = 4, out_channels: int = 3,
                 block_out_channels: tuple[int, ...] = (192, 192, 192, 192),
                 num_blocks: tuple[int, ...] = (3, 3, 3, 1), upsample_mode: str = "nearest",
                 act_fn: str = "relu", temporal_compression: int = 1, temporal_mid_layers: int = 0,
                 temporal_mid_head_dim: int = 64, teacher: str = "", architecture: str = "tae-192"):
        super().__init__()
        widths, blocks = list(block_out_channels), list(num_blocks)
        if len(widths) != len(blocks) or len(widths) < 1:
            raise ConfigError(f"block_out_channels {widths} and num_blocks {blocks} must have the same, non-zero "
                              f"length (one entry per resolution stage).")
        if upsample_mode not in ("nearest", "bilinear"):
            raise ConfigError(f"upsample_mode must be 'nearest' or 'bilinear', got {upsample_mode!r}")
        if temporal_mid_layers and len(widths) < 2:
            raise ConfigError("the temporal mid block sits after the first upsample: it needs at least 2 stages")
        if temporal_mid_layers and (widths[1] % 32 or widths[0] % temporal_mid_head_dim):
            raise ConfigError(f"the temporal mid block needs widths divisible by 32 (its GroupNorm) and by "
                              f"temporal_mid_head_dim={temporal_mid_head_dim}; got {widths[:2]}")
        self.conv_in = nn.Conv2d(latent_channels, widths[0], kernel_size=3, padding=1)
        self.act = get_activation(act_fn)
        self.blocks = nn.ModuleList(
            nn.Sequential(*[AutoencoderTinyBlock(w, w, act_fn) for _ in range(n)]) for w, n in zip(widths, blocks))
        self.upsamplers = nn.ModuleList(nn.Upsample(scale_factor=2, mode=upsample_mode) for _ in widths[:-1])
        # DecoderTiny's stage convs: no bias between stages, bias on the final RGB conv.
        self.convs = nn.ModuleList(
            nn.Conv2d(w, widths[i + 1] if i + 1 < len(widths) else out_channels, kernel_size=3, padding=1,
                      bias=i + 1 == len(widths))
            for i, w in enumerate(widths))
        self.expand = FrameExpansion(widths[0], temporal_compression) if temporal_compression > 1 else None
        # SVD's temporal-decoder mid block at the first upsampled resolution (it runs before that stage's conv).
        self.mid = (MidBlockTemporalDecoder(widths[0], widths[0], attention_head_dim=temporal_mid_head_dim,
                                            num_layers=temporal_mid_layers) if temporal_mid_layers else None)

    @property
    def spatial_compression(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    @property
    def causal(self) -> bool:
        return self.mid is None

    def stage_map(self) -> dict[str, list[nn.Module]]:
        """The lab's stage vocabulary over this decoder, for the profiler: conv_in, mid (the frame
        expansion and the temporal mid block, where present), up0..upN (a resolution's blocks, its
        upsample and the conv into the next resolution), head (the RGB conv)."""
        stages: dict[str, list[nn.Module]] = {"conv_in": [self.conv_in]}
        mid = [m for m in (self.expand, self.mid) if m is not None]
        if mid:
            stages["mid"] = mid
        last = len(self.blocks) - 1
        for i, blocks in enumerate(self.blocks):
            stages[f"up{i}"] = [blocks, *([self.upsamplers[i], self.convs[i]] if i < last else [])]
        stages["head"] = [self.convs[last]]
        return stages

    def forward(self, z: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        """Latents (B, C, T, h, w) -> video (B, 3, F, H, W), F = 1 + t(T-1) (t T when not first_chunk)."""
        b = z.shape[0]
        x = fold_frames(z)
        x = self.act(self.conv_in(torch.tanh(x / 3) * 3))  # DecoderTiny's soft clamp of the latents
        for i, (blocks, conv) in enumerate(zip(self.blocks, self.convs)):
            x = blocks(x)
            if i == 0 and self.expand is not None:
                x = self.expand(x, b, first_chunk)
            if i < len(self.upsamplers):
                x = self.upsamplers[i](x)
                if i == 0 and self.mid is not None:
                    frames = x.shape[0] // b
                    x = self.mid(x, image_only_indicator=torch.zeros(b, frames, dtype=x.dtype, device=x.device))
            x = conv(x)
        return unfold_frames(x, b)

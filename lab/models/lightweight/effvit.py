"""EfficientViT (DC-AE style) decoder for any latent space, built on diffusers' ``AutoencoderDC``
decoder (``diffusers.models.autoencoders.autoencoder_dc.Decoder``: ResBlock / EfficientViTBlock
stages joined by ``DCUpBlock2d`` pixel-shuffle upsamplers with channel-repeat shortcuts).

The paper config (widths 128,128,128,256,256,256, depths 0,5,10,0,0,0, BatchNorm + ReLU ResBlocks)
has no attention; stages with depth 0 add no upsampler, so that config upsamples 8x (two
``DCUpBlock2d`` plus the pixel-shuffle output conv). For 32x latents (LTX) give depth to two more stages.
"""

from __future__ import annotations

import torch
from torch import nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.autoencoders.autoencoder_dc import Decoder as DCDecoder
from diffusers.models.modeling_utils import ModelMixin

from lab.errors import ConfigError
from lab.models.lightweight.temporal import FrameExpansion, fold_frames, unfold_frames


class EfficientViTVideoDecoder(ModelMixin, ConfigMixin):
    """Per-frame DC-AE decoder; causal (each output frame sees its own latent frame only)."""

    config_name = "config.json"

    @register_to_config
    def __init__(self, latent_channels: int = 4, out_channels: int = 3,
                 block_out_channels: tuple[int, ...] = (128, 128, 128, 256, 256, 256),
                 layers_per_block: tuple[int, ...] = (0, 5, 10, 0, 0, 0), block_type: str = "ResBlock",
                 norm_type: str = "batch_norm", act_fn: str = "relu", attention_head_dim: int = 32,
                 temporal_compression: int = 1, teacher: str = "", architecture: str = "effvit"):
        super().__init__()
        widths, depths = list(block_out_channels), list(layers_per_block)
        if len(widths) != len(depths):
            raise ConfigError(f"block_out_channels {widths} and layers_per_block {depths} need the same length")
        # The in-shortcut repeats latent channels up to the first width; only possible when they divide it.
        self.decoder = DCDecoder(in_channels=out_channels, latent_channels=latent_channels,
                                 attention_head_dim=attention_head_dim, block_type=block_type,
                                 block_out_channels=tuple(widths), layers_per_block=tuple(depths),
                                 qkv_multiscales=((),) * len(widths), norm_type=norm_type, act_fn=act_fn,
                                 upsample_block_type="pixel_shuffle",
                                 in_shortcut=widths[-1] % latent_channels == 0)
        # Frame expansion right after conv_in: the lowest resolution, where it costs least.
        self.expand = FrameExpansion(widths[-1], temporal_compression) if temporal_compression > 1 else None

    @property
    def spatial_compression(self) -> int:
        depths = self.config.layers_per_block
        ups = sum(1 for i, d in enumerate(depths) if d > 0 and i < len(depths) - 1)
        return 2 ** (ups + (1 if depths[0] == 0 else 0))

    causal = True

    def stage_map(self) -> dict[str, list[nn.Module]]:
        """The lab's stage vocabulary over this decoder, for the profiler: conv_in (with the frame
        expansion), up0..upN in the order they run (lowest resolution first), head (norm, act, RGB conv)."""
        dec = self.decoder
        stages: dict[str, list[nn.Module]] = {"conv_in": [dec.conv_in, *([self.expand] if self.expand else [])]}
        for i, block in enumerate(reversed(dec.up_blocks)):
            stages[f"up{i}"] = [block]
        stages["head"] = [dec.norm_out, dec.conv_act, dec.conv_out]
        return stages

    def forward(self, z: torch.Tensor, first_chunk: bool = True) -> torch.Tensor:
        """Latents (B, C, T, h, w) -> video (B, 3, F, H, W), F = 1 + t(T-1) (t T when not first_chunk).

        Runs the diffusers decoder's own modules in its own order (see ``DCDecoder.forward``), with the
        frame expansion inserted after ``conv_in``."""
        b = z.shape[0]
        dec = self.decoder
        x = fold_frames(z)
        if dec.in_shortcut:
            r = dec.in_shortcut_repeats
            h = dec.conv_in(x) + x.repeat_interleave(r, dim=1, output_size=x.shape[1] * r)
        else:
            h = dec.conv_in(x)
        if self.expand is not None:
            h = self.expand(h, b, first_chunk)
        for up_block in reversed(dec.up_blocks):
            h = up_block(h)
        h = dec.norm_out(h.movedim(1, -1)).movedim(-1, 1)
        h = dec.conv_out(dec.conv_act(h))
        return unfold_frames(h, b)

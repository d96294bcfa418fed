"""How 2D (per-frame) lightweight decoders produce a causal video VAE's frame count.

Video VAEs with temporal compression t turn T latent frames into ``1 + t(T - 1)`` frames: the first
latent frame holds one frame, every later one holds t. The 2D decoders fold latent frames into the
batch and, at one point inside the network (low resolution, so it is cheap), expand each latent
frame's features into t frames with a learned 1x1 convolution (TAEHV's "TGrow"), then drop the
first t - 1 frames of the first latent frame. Every output frame therefore depends on its own latent
frame only: the decoders are causal and can decode one latent frame at a time.
"""

from __future__ import annotations

import torch
from torch import nn


class FrameExpansion(nn.Module):
    """(B*T, C, h, w) features of T latent frames -> (B*F, C, h, w) features of F = 1 + t(T-1) frames.

    A 1x1 conv makes t feature maps per latent frame (channel group k = output frame k of that
    latent frame); for the clip's first latent frame only the last group is kept, matching the
    teacher's "first frame alone" layout (TAEHV keeps 4T frames and trims 3 the same way).
    """

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.factor = int(factor)
        self.conv = nn.Conv2d(channels, channels * self.factor, kernel_size=1)

    def forward(self, x: torch.Tensor, batch: int, first_chunk: bool = True) -> torch.Tensor:
        """``first_chunk``: the folded frames start at the clip's first latent frame (trim it)."""
        bt, c, h, w = x.shape
        t_lat = bt // batch
        y = self.conv(x).view(batch, t_lat, self.factor, c, h, w).flatten(1, 2)  # (B, T*t, C, h, w)
        if first_chunk:
            y = y[:, self.factor - 1:]
        return y.reshape(-1, c, h, w)


def fold_frames(z: torch.Tensor) -> torch.Tensor:
    """(B, C, T, h, w) -> (B*T, C, h, w), frame-major within each clip."""
    return z.permute(0, 2, 1, 3, 4).flatten(0, 1)


def unfold_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*F, C, H, W) -> (B, C, F, H, W)."""
    return x.view(batch, -1, *x.shape[1:]).permute(0, 2, 1, 3, 4)


def output_frames(latent_frames: int, factor: int, first_chunk: bool = True) -> int:
    return (1 + factor * (latent_frames - 1)) if first_chunk else factor * latent_frames

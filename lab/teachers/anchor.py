"""Latent anchoring: an opening phase that keeps a freshly initialised VAE decoder reading its latents.

Why: trained from random weights on varied clips, the mini LTX-Video VAE collapses within ~10 steps to a
decoder that ignores its latents and outputs the average clip; the gradient reaching the encoder then dies
and the run never recovers (measured, see data/checkpoints/mini-ltx/README.md). A random encoder's
latents carry too little of the clip for the decoder to find them before the average wins.

What: for the first ``anchor_steps`` steps the latents are not learned but fixed and informative. Each
latent frame holds block means of its frames (the first frame alone, as both Wan and LTX encode it, then
the mean of each group of ``t`` frames) at ``r x r`` sub-blocks of every ``s x s`` latent pixel, folded
into channels (3 r^2 of them; the rest are zero). The decoder learns to decode these anchors and the
encoder learns to output them (MSE on its posterior mean). After the phase, plain VAE training takes
over with a decoder that already depends on its input, and the latents are free to move away from the
anchors. Measured on mini-ltx (128x128 crops, batch 4, 9 frames): on a fixed batch of training windows
plain training sits at the mean-colour level (11.5 dB vs 11.9 for each window's mean colour) from step
100 on, while 300 anchored steps reach 14.8 dB and joint training goes on from there (15.6 dB at step
500). The shipped mini-ltx (300 anchored of 8000 steps) reaches 19.2 / 19.0 dB on held-out carphone /
bikes, where the collapsed one had 11.8 / 12.7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.errors import LabError


def anchor_fold(spatial: int, channels: int) -> int:
    """The largest r dividing ``spatial`` with 3 r^2 <= ``channels``: sub-blocks per latent pixel side."""
    fits = [r for r in range(1, spatial + 1) if spatial % r == 0 and 3 * r * r <= channels]
    if not fits:
        raise LabError(f"latent anchoring needs at least 3 latent channels, got {channels}")
    return max(fits)


def anchor_latents(x: torch.Tensor, temporal: int, spatial: int, channels: int) -> torch.Tensor:
    """Video (N, 3, 1 + temporal*k, H, W) in [-1, 1] -> anchor latents (N, channels, 1 + k, H/spatial,
    W/spatial): block means of the frames, as described in the module docstring."""
    n, c, t, h, w = x.shape
    if c != 3 or (t - 1) % temporal or h % spatial or w % spatial:
        raise LabError(f"anchor_latents: expected (N, 3, 1+{temporal}k, H, W) with H, W multiples of {spatial}, "
                       f"got {tuple(x.shape)}")
    r = anchor_fold(spatial, channels)
    later = x[:, :, 1:].reshape(n, c, (t - 1) // temporal, temporal, h, w).mean(3)
    frames = torch.cat([x[:, :, :1], later], 2)                                  # (N, 3, T', H, W)
    blocks = F.avg_pool3d(frames, (1, spatial // r, spatial // r))              # (N, 3, T', H r/s, W r/s)
    tz = frames.shape[2]
    folded = F.pixel_unshuffle(blocks.flatten(1, 2), r)                         # (N, 3 T' r^2, H/s, W/s)
    folded = folded.reshape(n, c, tz, r * r, h // spatial, w // spatial).transpose(2, 3).flatten(1, 2)
    pad = folded.new_zeros(n, channels - folded.shape[1], tz, h // spatial, w // spatial)
    return torch.cat([folded, pad], 1)

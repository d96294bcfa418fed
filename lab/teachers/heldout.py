"""Held-out reconstruction figures: PSNR and SSIM of encode -> decode on clips training never saw."""

from __future__ import annotations

import torch

from lab.data.heldout import HELDOUT, load_heldout
from lab.eval.metrics import psnr, ssim
from lab.teachers.config import Preset


@torch.no_grad()
def reconstruct(vae, video: torch.Tensor) -> torch.Tensor:
    """encode (posterior mean) -> decode, clamped to [-1, 1], in the model's device and dtype."""
    p = next(vae.parameters())
    z = vae.encode(video.to(p.device, p.dtype)).latent_dist.mode()
    return vae.decode(z).sample.float().clamp(-1, 1).cpu()


def evaluate(vae, preset: Preset, frames: int = 9) -> dict:
    """{clip: {psnr, ssim, frames, size}} on every held-out clip."""
    was_training = vae.training
    vae.eval()
    out = {}
    try:
        for clip in HELDOUT:
            video = load_heldout(clip, frames, preset)
            rec = reconstruct(vae, video)
            out[clip.name] = {"psnr": round(psnr(rec, video), 3), "ssim": round(ssim(rec, video), 4),
                              "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])]}
    finally:
        vae.train(was_training)
    return out

"""Reconstruction metrics on video tensors in [-1, 1], (N, 3, T, H, W)."""

from __future__ import annotations

import torch


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB over the whole tensor, for signals in [-1, 1] (peak-to-peak 2),
    which equals PSNR of the same frames in [0, 255]."""
    if x.shape != y.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")
    mse = torch.mean((x.double() - y.double()) ** 2).item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(4.0 / mse)).item()

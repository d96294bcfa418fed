"""Timing a decode honestly: the device synchronised before and after every timed call (CUDA runs
asynchronously), and the fp32 error of a fast path against its reference. The runtime's own searches
(chunk size, compile mode) and the benchmark (lab.eval.bench) share these."""

from __future__ import annotations

import math
import time

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, z: torch.Tensor) -> float:
    """Seconds of one call ``fn(z)``, with the device synchronised before and after (CUDA runs
    asynchronously: without the syncs the clock would stop before the work does)."""
    synchronize(z.device)
    t0 = time.perf_counter()
    fn(z)
    synchronize(z.device)
    return time.perf_counter() - t0


def video_error(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    """(PSNR in dB with peak-to-peak 2, max abs error) of video ``out`` against ``ref``, both in [-1, 1],
    computed in float32 (inf when identical)."""
    diff = out.detach().float() - ref.detach().float()
    mse, err = float(diff.square().mean()), float(diff.abs().max())
    return (math.inf if mse == 0 else 10.0 * math.log10(4.0 / mse)), err

"""Decode once for the picture and time it: seconds, fps, peak memory, parameters.

Same method as ``lab.eval.bench`` so the numbers read alike. Timing runs in this process (a student
rebuilt from a slider exists only here): ``repeats`` timed decodes after the one shown, each
bracketed by device synchronisation; ``seconds`` is their median. The app runs one job at a time
(its queue), so nothing else decodes meanwhile.

Peak memory: on CUDA, ``max_memory_allocated`` over the shown decode after a reset (via
lab.eval.bench). On CPU, the resident set of this long-running server says little (the allocator
keeps freed memory, so a decode often adds nothing measurable), so it is measured as ``python -m lab
bench`` does: a fresh process loads the decoder (a student is saved to a folder first) and decodes
once (:func:`lab.eval.bench.cpu_peak_memory`). That costs a few seconds, so callers cache it per
decoder.
"""

from __future__ import annotations

import statistics

import torch

from lab.eval.bench import cpu_peak_memory, cuda_peak_memory, timed


def measure_decode(decoder, z: torch.Tensor, repeats: int = 2) -> tuple[torch.Tensor, dict]:
    """(video, numbers) for one decoder on latents ``z``; see the module docstring for the method.
    On CPU the numbers have no memory: add :func:`cpu_memory` for that."""
    device = z.device
    stats: dict = {"decoder_params": int(decoder.decoder_params())}
    if device.type == "cuda":
        stats.update(peak_mem_bytes=cuda_peak_memory(decoder, z), peak_mem_kind="cuda max_memory_allocated")
    video = decoder.decode(z)
    times = [timed(decoder.decode, z) for _ in range(max(1, repeats))]
    sec = statistics.median(times)
    stats.update(seconds=sec, fps=video.shape[2] / sec, times=times)
    return video, stats


def cpu_memory(ref: str, weights: str | None, frames: int, size: tuple[int, int], dtype: str = "fp32") -> dict:
    """Peak memory of one decode of ``ref`` (a registered name or a saved folder) in a fresh process."""
    out = cpu_peak_memory(ref, weights, dtype, frames, tuple(size))
    return {"peak_mem_bytes": out["peak_mem_bytes"], "decode_mem_bytes": out["decode_mem_bytes"],
            "peak_mem_kind": "cpu peak RSS of a fresh process (load + one decode)"}

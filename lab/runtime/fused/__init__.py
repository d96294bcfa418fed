"""The fused runtime (``NAME@fused``): the lab's decoders on the same weights with fused kernels, causal
caches without copies and channels-last buffers, the same output within a stated tolerance.

- ``ops``: the kernels as torch custom ops (reference, fake and Triton implementations);
- ``wan``: the runtime of Wan 2.1 teachers and their students (``FusedWan``).

``set_fused(decoder)`` installs it into a decoder's model, ``set_fused(decoder, False)`` removes it;
``is_fusable`` says whether a decoder has a fused runtime. What it measures like is in the trace
(``python -m lab trace --decoders wan2.1,wan2.1@fused``) and, on a GPU, in the profile and bench of
scripts/gpu/run.sh's perf phase.
"""

from __future__ import annotations

import torch

from lab.errors import LabError
from lab.runtime.fused.wan import FusedWan, check_fusable


def why_not_fusable(decoder) -> str | None:
    """None when ``decoder`` has a fused runtime, else why not."""
    vae = getattr(decoder, "vae", None)
    if vae is None or not getattr(decoder, "causal", False):
        return f"{getattr(decoder, 'name', 'this decoder')} has no fused runtime (Wan 2.1 teachers and students)"
    try:
        check_fusable(vae)
    except LabError as exc:
        return str(exc)
    return None


def is_fusable(decoder) -> bool:
    return why_not_fusable(decoder) is None


def default_memory_format(device: torch.device | str | None) -> torch.memory_format:
    """Channels-last 3D everywhere: cuDNN's fast 3D kernels (depthwise included) need it, a time slice of
    it is a 2D channels-last frame, and the meta-device trace measures the CUDA path's layout."""
    return torch.channels_last_3d


def set_fused(decoder, on: bool = True, memory_format: torch.memory_format | None = None):
    """Install (``on``) or remove the fused runtime on ``decoder``'s model. Returns the decoder."""
    current = getattr(decoder, "fused", None)
    if current is not None:
        current.uninstall()
        decoder.fused = None
    if not on:
        return decoder
    why = why_not_fusable(decoder)
    if why is not None:
        raise LabError(why)
    if getattr(decoder, "compile_mode", None):
        raise LabError(f"{decoder.name} runs under torch.compile; fuse first, then compile (NAME@fused+compile)")
    runtime = FusedWan(decoder.vae, memory_format or default_memory_format(decoder.device))
    runtime.install()
    decoder.fused = runtime
    return decoder


__all__ = ["FusedWan", "is_fusable", "set_fused", "why_not_fusable"]

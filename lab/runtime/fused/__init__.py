"""The fused runtime (``NAME@fused``): the lab's decoders on the same weights with fused kernels, causal
caches without copies and channels-last buffers, the same output within a stated tolerance.

- ``ops``: the kernels as torch custom ops (reference, fake and Triton implementations); ``norms``: which
  op runs which norm; ``operators``: how the lab's drop-in operators run over a padded buffer; ``conv``: the
  runtimes' convolutions (float32 3D convs on the CPU through oneDNN, which ATen's rule skips for small ones);
- ``subpixel``: resample convs folded with their nearest 2x upsample (one transposed conv; ``@fused+subpixel``);
- each VAE family registers its runtime (``register_fused_runtime``): Wan 2.1's (lab.families.wan.fused:
  fused norms, causal caches without copies, channels-last, CUDA graphs of the steady step), LTX-Video's
  (lab.families.ltx.fused: fused norms written into the convs' time-padded, channels-last inputs) and LTX-2's
  (lab.families.ltx2.fused: the same with its per-call causality, reflect padding in the buffer and streams);
  Wan 2.2's extends Wan 2.1's with its residual up blocks (lab.families.wan.v22.fused).

``set_fused(decoder)`` installs it into a decoder's model, ``set_fused(decoder, False)`` removes it;
``is_fusable`` says whether a decoder has a fused runtime, ``fused_by_default`` whether its family makes it
the decoding commands' default on the decoder's device. What it measures like is in the trace
(``python -m lab trace --decoders wan2.1,wan2.1@fused``) and, on a GPU, in the profile and bench of
scripts/gpu/run.sh's perf phase.
"""

from __future__ import annotations

import torch

from dataclasses import dataclass
from typing import Callable

from lab.errors import LabError
from lab.plugins import load_families


@dataclass(frozen=True)
class FusedFamily:
    """A family's fused runtime. ``cls(vae, memory_format, graphs=..., subpixel=...)`` with ``install()``,
    ``uninstall()``, ``base_forward(module)``, ``graphs``, ``subpixel`` (None when off) and ``why_no_subpixel``
    (a class attribute: why sub-pixel resampling does nothing for the family, or None); ``check(vae)`` raises a
    LabError that says what is not covered; ``default_on``: the device types where a plain name decodes under it
    in the decoding commands (lab.runtime.spec.default_runtime), the ones where the family has measured it within
    tolerance of eager and faster. Its plug-in says why, beside the numbers."""
    cls: type
    check: Callable
    default_on: tuple[str, ...] = ()


#: the fused runtime of each family (lab.arch name) that has one
RUNTIMES: dict[str, FusedFamily] = {}


def register_fused_runtime(family: str, cls: type, check: Callable, default_on: tuple[str, ...] = ()) -> None:
    RUNTIMES[family] = FusedFamily(cls, check, tuple(default_on))


def why_not_fusable(decoder) -> str | None:
    """None when ``decoder`` has a fused runtime, else why not."""
    load_families()
    arch = getattr(decoder, "arch", None)
    vae = getattr(decoder, "vae", None)
    if arch is None or vae is None or arch.name not in RUNTIMES:
        return (f"{getattr(decoder, 'name', 'this decoder')} has no fused runtime (there is one for the "
                f"{', '.join(sorted(RUNTIMES))} families: their teachers and students)")
    try:
        RUNTIMES[arch.name].check(vae)
    except LabError as exc:
        return str(exc)
    return None


def is_fusable(decoder) -> bool:
    return why_not_fusable(decoder) is None


def fused_by_default(decoder) -> bool:
    """Whether ``decoder`` decodes under its fused runtime when a decoding command names it without a runtime:
    its family lists its device type in ``default_on``, and the runtime covers it."""
    device = getattr(getattr(decoder, "device", None), "type", None)
    arch = getattr(decoder, "arch", None)
    return (arch is not None and arch.name in RUNTIMES and device in RUNTIMES[arch.name].default_on
            and is_fusable(decoder))


def default_memory_format(device: torch.device | str | None) -> torch.memory_format:
    """Channels-last 3D everywhere: cuDNN's fast 3D kernels (depthwise included) need it, a time slice of
    it is a 2D channels-last frame, and the meta-device trace measures the CUDA path's layout."""
    return torch.channels_last_3d


def set_fused(decoder, on: bool = True, memory_format: torch.memory_format | None = None, graphs: bool = False,
              subpixel: bool = False):
    """Install (``on``) or remove the fused runtime on ``decoder``'s model. ``graphs``: on CUDA, replay each
    steady-state causal step as one CUDA graph (``FusedWan._graph_step``; elsewhere a no-op). ``subpixel``:
    each "nearest 2x upsample + 3x3 conv" as one sub-pixel conv (lab.runtime.fused.subpixel: fewer bytes and
    MACs, another rounding; where the family has such upsamplers). Returns the decoder."""
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
    cls = RUNTIMES[decoder.arch.name].cls
    runtime = cls(decoder.vae, memory_format or default_memory_format(decoder.device), graphs=graphs,
                  subpixel=subpixel)
    runtime.install()
    decoder.fused = runtime
    return decoder


__all__ = ["RUNTIMES", "FusedFamily", "fused_by_default", "is_fusable", "register_fused_runtime", "set_fused",
           "why_not_fusable"]

"""The fused runtime for Wan 2.2 decoders (registered for the Wan 2.2 architecture; lab.runtime.fused): Wan 2.1's
(lab.families.wan.fused: fused norm + SiLU written into copy-free causal caches, channels-last buffers,
CUDA graphs of the steady step, sub-pixel resample convs) with the residual up blocks of Wan 2.2.

A ``WanResidualUpBlock`` runs its resnets and upsampler as Wan 2.1's up block does, then adds
``avg_shortcut`` (diffusers' ``DupUp3D``, or the student's ``IndexedDupUp3D`` gather) of the block's input
in place into the block's output: ``DupUp3D`` as a broadcast view of the input (``add_dup_up_``), never
materialised. Eager, diffusers clones the input first; here the input is never written, so no clone is
needed. The 12-channel patchified output is unpatchified after the decoder, by the
lab's causal loop (lab.families.wan.chunked), as in eager.
"""

from __future__ import annotations

import math

import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import DupUp3D
from torch import nn

from lab.errors import LabError
from lab.families.wan.fused import FusedWan
from lab.families.wan.v22.arch import WAN22
from lab.runtime.fused import register_fused_runtime


class FusedWan22(FusedWan):
    """The fused runtime state of one Wan 2.2-style VAE (a ``WanDecoder3d`` with residual up blocks)."""

    @staticmethod
    def check(vae: nn.Module) -> None:
        check_fusable(vae)

    def _up_block_forward(self, blk: nn.Module):
        def forward(x: torch.Tensor, first_chunk: bool = False) -> torch.Tensor:
            y = self._resnets_then_upsample(blk.resnets, blk.upsampler, x, first_chunk)
            sc = blk.avg_shortcut
            if sc is not None and not add_dup_up_(y, sc, x, first_chunk):
                # DupUp3D drops the first factor_t - 1 frames of a clip's first step, as the upsampler does
                y = y.add_(sc(x, first_chunk=first_chunk))
            return y
        return forward


def add_dup_up_(y: torch.Tensor, sc: nn.Module, x: torch.Tensor, first_chunk: bool) -> bool:
    """``y += sc(x)`` for a diffusers ``DupUp3D`` ``sc``, read from ``x`` through a broadcast view instead of
    materialising the shortcut (eager: ``repeat_interleave`` and a permuted copy, each the size of ``y``).
    False (nothing done) where the view does not apply: another shortcut class (the students' gather), or
    channel repeats that are not whole trailing sub-positions.

    Why it is a view: DupUp3D's output channel ``o`` at sub-position ``k = (a, b, c)`` (time, row, column
    offsets) is input channel ``(o * factor + k) // repeats``. When ``repeats`` is the product of the last
    sub-position sizes, that is input channel ``o * q + (the leading offsets)``: ``x`` split along its channels
    into ``(o, leading offsets)``, broadcast over the trailing ones."""
    if type(sc) is not DupUp3D:
        return False
    ft, fs = sc.factor_t, sc.factor_s
    sizes = [ft, fs, fs]
    split = next((p for p in range(4) if math.prod(sizes[p:]) == sc.repeats), None)
    n, _, t, h, w = x.shape
    if split is None or (first_chunk and ft > 1 and t != 1):
        return False
    lead = sizes[:split] + [1] * (3 - split)  # offsets that pick the input channel; 1 = broadcast
    src = x.view(n, sc.out_channels, *lead, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)  # (n, o, t, a, h, b, w, c)
    frames = ft
    if first_chunk and ft > 1:  # the clip's first step keeps the last time offset only
        src, frames = (src[:, :, :, ft - 1:] if lead[0] > 1 else src), 1
    y.view(n, sc.out_channels, t, frames, h, fs, w, fs).add_(src)
    return True


def check_fusable(vae: nn.Module) -> None:
    """Raise a LabError naming what the Wan 2.2 fused runtime does not cover in ``vae``."""
    dec = getattr(vae, "decoder", None)
    if dec is None or type(dec).__name__ != "WanDecoder3d" or not hasattr(vae, "post_quant_conv"):
        raise LabError("the Wan 2.2 fused runtime covers Wan 2.2-style decoders (a WanDecoder3d)")
    if any(type(b).__name__ != "WanResidualUpBlock" for b in dec.up_blocks):
        raise LabError("the Wan 2.2 fused runtime covers residual up blocks (WanResidualUpBlock) only")


# Not the default anywhere yet: its only decoders are the 555M-param teacher and its test config. On the CPU the test
# config gains 4.4x (17x256x256, 1 thread) but the teacher 1.05x (9x128x128, random weights, 2 threads: noise), and
# no GPU has timed it.
register_fused_runtime(WAN22.name, FusedWan22, check_fusable)

"""Training batches for distillation: real clip windows (random crop, window and flip, from
lab.data.clips.ClipWindows) encoded on the fly by the frozen teacher, and the fixed held-out
validation clips with the teacher's latents and decode computed once.

Sampling draws only from the generator passed in, whose state the checkpoint saves, so a resumed
run sees the same batches. Under torch.distributed each rank seeds its own generator (seed + rank):
the ranks draw different windows, which shards the (random-access) data without a sampler.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import torch

from lab.data.clips import ClipSpec, ClipWindows
from lab.data.samples import resolve_clip
from lab.data.video import load_clip


@dataclass
class ValClip:
    name: str
    real: torch.Tensor       # (1, 3, T, H, W) in [-1, 1]
    latents: torch.Tensor    # teacher-encoded, normalized
    teacher: torch.Tensor    # teacher decode


class TeacherBatches:
    def __init__(self, teacher, clips: list, short_sides: list[int], autocast=None):
        self.teacher = teacher
        specs = [clip_spec(c) for c in clips]
        self.windows = ClipWindows(specs, short_sides=tuple(short_sides))
        if teacher.device.type == "cuda":
            self.windows.to(teacher.device)  # uint8 clips on the GPU: windows are cut there, no host copies
        # The trainer's autocast (bf16 on CUDA): the frozen encoder runs in it like the decoders do.
        self.autocast = autocast or contextlib.nullcontext()

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator):
        """(real clip window, teacher latents): the teacher's encoder runs under no_grad."""
        real = self.windows.sample(batch, frames, crop, generator)
        real = real.to(self.teacher.device, self.teacher.dtype)
        with torch.no_grad(), self.autocast:
            z = self.teacher.encode(real)
        return real, z


def clip_spec(clip) -> ClipSpec:
    """A training clip: a name or path, optionally with a frame range ``name[start:stop]`` (e.g.
    ``bikes[0:192]``, the frames mini-wan trained on: 'bikes' from frame 200 on is held out)."""
    m = re.fullmatch(r"(.+)\[(\d*):(\d*)\]", str(clip))
    if not m:
        return ClipSpec(str(clip), str(resolve_clip(clip)))
    name, start, stop = m.group(1), int(m.group(2) or 0), int(m.group(3)) if m.group(3) else None
    return ClipSpec(name, str(resolve_clip(name)), start, stop)


def load_val_clips(teacher, names: list, frames: int, size: int) -> list[ValClip]:
    out = []
    for name in names:
        real = load_clip(resolve_clip(name), frames=frames, size=(size, size),
                         frame_multiple=teacher.geometry.t, spatial_multiple=teacher.geometry.spatial)
        real = real.to(teacher.device, teacher.dtype)
        z = teacher.encode(real)
        out.append(ValClip(str(name), real, z, teacher.decode(z)))
    return out

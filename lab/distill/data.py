"""Training batches for distillation: real clip windows (random crop, window and flip, from
lab.data.clips.ClipWindows) encoded on the fly by the frozen teacher, and the fixed held-out
validation clips with the teacher's latents and decode computed once.

Sampling draws only from the generator passed in, whose state the checkpoint saves, so a resumed
run sees the same batches. Under torch.distributed each rank seeds its own generator (seed + rank):
the ranks draw different windows, which shards the (random-access) data without a sampler.

A folder, glob or manifest spec is streamed from disk instead (``lab.data.stream``: batches keyed by
step, rank r reads its own files), and ``data.cache`` reads windows and latents that
``python -m lab data encode`` wrote (``lab.data.cache``): the teacher's encoder then never runs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from lab.data.cache import LatentCache
from lab.data.clips import ClipSpec, ClipWindows
from lab.data.dataset import resolve_spec, streamed, training_entry, training_item
from lab.data.stream import StreamWindows, sample_windows
from lab.data.samples import resolve_clip
from lab.data.video import load_clip


@dataclass
class ValClip:
    name: str
    real: torch.Tensor       # (1, 3, T, H, W) in [-1, 1]
    latents: torch.Tensor    # teacher-encoded, normalized
    teacher: torch.Tensor    # teacher decode


class TeacherBatches:
    def __init__(self, teacher, clips: list, short_sides: list[int], autocast=None, *, manifest: str | None = None,
                 seed: int = 0, rank: int = 0, world: int = 1, workers: int = 0):
        self.teacher = teacher
        if streamed(clips, manifest):
            self.windows = StreamWindows(resolve_spec(clips, manifest), short_sides=tuple(short_sides), seed=seed,
                                         rank=rank, world=world, workers=workers)
        else:
            specs = [clip_spec(c) for c in clips]
            self.windows = ClipWindows(specs, short_sides=tuple(short_sides))
        if teacher.device.type == "cuda":
            self.windows.to(teacher.device)  # uint8 clips on the GPU: windows are cut there, no host copies
        # The trainer's autocast (bf16 on CUDA): the frozen encoder runs in it like the decoders do.
        self.autocast = autocast or contextlib.nullcontext()

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator, step: int | None = None):
        """(real clip window, teacher latents): the teacher's encoder runs under no_grad. ``step`` keys a
        streamed spec's batch (in-memory clips draw from ``generator``)."""
        real = sample_windows(self.windows, batch, frames, crop, generator, step)
        real = real.to(self.teacher.device, self.teacher.dtype)
        with torch.no_grad(), self.autocast:
            z = self.teacher.encode(real)
        return real, z

    def close(self):
        getattr(self.windows, "close", lambda: None)()


class CachedBatches:
    """(real window, teacher latents) read from a latent cache: the same pairs TeacherBatches makes, with the
    encoder run once beforehand (``python -m lab data encode``)."""

    def __init__(self, teacher, folder: str, *, teacher_name: str, frames: int, crop: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.teacher = teacher
        self.cache = LatentCache(folder, seed=seed, rank=rank, world=world, device=teacher.device)
        self.cache.check(teacher_name, frames, crop)

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator, step: int | None = None):
        real, z = self.cache.sample(batch, frames, crop, generator, step=step)
        return real.to(self.teacher.dtype), z.to(self.teacher.dtype)

    def close(self):
        pass


def training_batches(teacher, data, *, teacher_name: str, seed: int, rank: int = 0, world: int = 1, autocast=None):
    """The batches a run's ``data`` section asks for: a latent cache, a streamed spec or in-memory clips."""
    if data.cache:
        return CachedBatches(teacher, data.cache, teacher_name=teacher_name, frames=data.frames, crop=data.crop,
                             seed=seed, rank=rank, world=world)
    return TeacherBatches(teacher, data.clips, data.short_sides, autocast=autocast, manifest=data.manifest,
                          seed=seed, rank=rank, world=world, workers=data.workers)


def clip_spec(clip) -> ClipSpec:
    """A training clip: a name or path, optionally with a frame range ``name[start:stop]`` (e.g.
    ``bikes[0:192]``, the frames mini-wan trained on: 'bikes' from frame 200 on is held out, so a plain
    'bikes' means ``bikes[0:192]`` too)."""
    name = training_item(str(clip))[0]
    # Held-out frames are refused, a plain 'bikes' stops before them, by name and by the file it resolves to.
    e = training_entry(str(clip))
    return ClipSpec(name, e.path, e.start, e.stop)


def load_val_clips(teacher, names: list, frames: int, size: int) -> list[ValClip]:
    out = []
    for name in names:
        real = load_clip(resolve_clip(name), frames=frames, size=(size, size),
                         frame_multiple=teacher.geometry.t, spatial_multiple=teacher.geometry.spatial)
        real = real.to(teacher.device, teacher.dtype)
        z = teacher.encode(real)
        out.append(ValClip(str(name), real, z, teacher.decode(z)))
    return out

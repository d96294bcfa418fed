"""What a teacher trains on: the built-in real clips or a configured dataset, plus, with ``--stills``,
camera moves over photographs (shared by training and by the export, whose latent statistics are
measured on the run's own data)."""

from __future__ import annotations

import logging

from lab.data.clips import ClipWindows
from lab.data.dataset import resolve_spec, streamed
from lab.data.mix import MixedWindows
from lab.data.stills import StillWindows, load_photos, skimage_photos
from lab.data.stream import StreamWindows
from lab.teachers.config import TrainConfig, training_clips

log = logging.getLogger("lab.teachers")


def training_clip_windows(cfg: TrainConfig, rank: int = 0, world: int = 1):
    """The real video windows: the built-in training clips, or the configured dataset (``clips``/``manifest``:
    held in memory for clip names and files, streamed from disk for folders, globs and manifests, rank ``rank`` of
    ``world`` reading its own share of the files)."""
    d = cfg.data
    if not (d.clips or d.manifest):
        specs = training_clips(d.wan_clip, d.registry_clips)
        log.info("teacher data: %s (the built-in clips; train on others with --data or --manifest)",
                 ", ".join(s.describe() for s in specs))
        return ClipWindows(specs, short_sides=d.short_sides)
    if streamed(d.clips, d.manifest):
        return StreamWindows(resolve_spec(d.clips, d.manifest), short_sides=d.short_sides, seed=cfg.seed,
                             rank=rank, world=world, workers=d.workers)
    return ClipWindows([e.clip_spec() for e in resolve_spec(d.clips)], short_sides=d.short_sides)


def training_data(cfg: TrainConfig, rank: int = 0, world: int = 1):
    """The configured windows: the real training clips, plus camera moves over photos with --stills."""
    clips = training_clip_windows(cfg, rank, world)
    d = cfg.data
    if d.stills is None:
        return clips
    photos = skimage_photos() if d.stills == "skimage" else load_photos(d.stills)
    stills = StillWindows(photos, short_side=max(d.short_sides), device=cfg.device)
    return MixedWindows(clips, stills, d.stills_fraction)

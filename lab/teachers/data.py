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


def training_clip_windows(cfg: TrainConfig):
    """The real video windows: the built-in training clips, or the configured dataset (``clips``/``manifest``:
    held in memory for clip names and files, streamed from disk for folders, globs and manifests)."""
    if not (cfg.clips or cfg.manifest):
        specs = training_clips(cfg.wan_clip)
        log.info("teacher data: %s (the built-in clips; train on others with --data or --manifest)",
                 ", ".join(s.describe() for s in specs))
        return ClipWindows(specs, short_sides=cfg.short_sides)
    if streamed(cfg.clips, cfg.manifest):
        return StreamWindows(resolve_spec(cfg.clips, cfg.manifest), short_sides=cfg.short_sides, seed=cfg.seed,
                             workers=cfg.workers)
    return ClipWindows([e.clip_spec() for e in resolve_spec(cfg.clips)], short_sides=cfg.short_sides)


def training_data(cfg: TrainConfig):
    """The configured windows: the real training clips, plus camera moves over photos with --stills."""
    clips = training_clip_windows(cfg)
    if cfg.stills is None:
        return clips
    photos = skimage_photos() if cfg.stills == "skimage" else load_photos(cfg.stills)
    stills = StillWindows(photos, short_side=max(cfg.short_sides), device=cfg.device)
    return MixedWindows(clips, stills, cfg.stills_fraction)

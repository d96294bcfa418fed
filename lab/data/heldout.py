"""The real clips and frames every teacher and student is scored on and never trained on: 'carphone'
entirely (native 176x144) and 'bikes' from frame BIKES_HELDOUT_START (128x128). Training samples 'bikes'
only up to BIKES_TRAIN_STOP; the gap keeps a training window from touching the held-out frames."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lab.data.samples import sample_clip
from lab.data.video import fit_clip, read_frames, to_tensor
from lab.errors import ConfigError, LabError

# Frames of 'bikes' that training never samples: held-out frames start BIKES_HELDOUT_START, and a
# gap of TRAIN_GAP frames keeps a training window from touching them.
TRAIN_GAP = 8
BIKES_HELDOUT_START = 200
BIKES_TRAIN_STOP = BIKES_HELDOUT_START - TRAIN_GAP  # 192
#: Sample clips that show a held-out clip's footage (carphone's compressed twin): held out with it.
TWINS = {"carphone_distorted": "carphone"}


@dataclass(frozen=True)
class HeldOutClip:
    name: str
    clip: str           # a sample clip name
    start: int
    short_side: int | None  # resize the short side to this first (None: native size)
    square: bool        # then center-crop a square (else: crop to the VAE's grid)


HELDOUT = [
    HeldOutClip("carphone", "carphone", 0, None, False),            # never seen, native 176x144
    HeldOutClip("bikes-heldout", "bikes", BIKES_HELDOUT_START, 128, True),  # unseen frames, 128x128
]


def training_stop(name: str) -> int | None:
    """The first frame of clip ``name`` that training and calibration must not read: 0 for a clip held
    out entirely (carphone and its twin), BIKES_TRAIN_STOP for 'bikes', None for a clip with no held-out frames."""
    starts = [c.start for c in HELDOUT if c.clip == TWINS.get(name, name)]
    if not starts:
        return None
    return 0 if min(starts) == 0 else max(0, min(starts) - TRAIN_GAP)


def training_spec(name: str) -> str:
    """``name`` limited to the frames training may read, written as lab.distill's clip specs are
    ('bikes' -> 'bikes[0:192]'); a clip held out entirely is refused."""
    stop = training_stop(name)
    if stop == 0:
        raise LabError(f"'{name}' is held out for evaluation (lab.data.heldout); it cannot be a training clip.")
    return name if stop is None else f"{name}[0:{stop}]"


def training_range(name: str, start: int = 0, stop: int | None = None, *, ranged: bool = False
                   ) -> tuple[int, int | None]:
    """The frames ``[start, stop)`` of clip ``name`` that training may read. A plain name of a clip with
    held-out frames ('bikes', ``ranged=False``) means its frames before them; a range that reaches into them
    ('bikes[150:]') and a clip held out entirely ('carphone') are refused: a model must never train on what it
    is scored on. Names only: a path is the user's own file."""
    limit = training_stop(name)
    if limit is None:
        return start, stop
    if limit == 0:
        raise ConfigError(f"'{name}' is held out for evaluation (lab.data.heldout); it cannot be a training clip.")
    if not ranged:
        return start, limit
    if stop is None or stop > limit:
        raise ConfigError(f"'{name}[{start}:{'' if stop is None else stop}]' reads frames of '{name}' that training "
                          f"never reads (from frame {limit} on: the held-out frames and the gap before them, "
                          f"lab.data.heldout); end the range at {limit} at most, e.g. '{name}[{start}:{limit}]'.")
    return start, stop


def reads_heldout(name: str, frames: int, start: int = 0) -> bool:
    """Whether reading ``frames`` frames of clip ``name`` from ``start`` touches its held-out frames."""
    stop = training_stop(name)
    return stop is not None and start + frames > stop


def load_heldout(clip: HeldOutClip, frames: int, grid) -> torch.Tensor:
    """The held-out clip as a (1, 3, T, H, W) video in [-1, 1] fitted to a VAE's grid (``grid.frame_multiple``,
    ``grid.spatial_multiple``: a teacher preset, or a decoder's latent geometry)."""
    raw = to_tensor(read_frames(sample_clip(clip.clip), start=clip.start, max_frames=frames))
    size = None
    if clip.short_side is not None:
        h, w = raw.shape[-2:]
        s = clip.short_side // grid.spatial_multiple * grid.spatial_multiple
        size = (s, s) if clip.square else (h * s // min(h, w) // grid.spatial_multiple * grid.spatial_multiple,
                                           w * s // min(h, w) // grid.spatial_multiple * grid.spatial_multiple)
    return fit_clip(raw, frames=frames, size=size, frame_multiple=grid.frame_multiple,
                    spatial_multiple=grid.spatial_multiple)

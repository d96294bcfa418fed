"""Calibration latents: real clips encoded by the teacher's own encoder (what the student will see),
and the default calibration clips that ``lab prune``, ``lab.prune.prune`` and the demo share."""

from __future__ import annotations

import torch

from lab.data.heldout import reads_heldout
from lab.data.samples import available_clips, resolve_clip
from lab.data.video import load_clip
from lab.errors import LabError
from lab.runtime.fused.conv import onednn_conv3d

#: HxW the default clips are read at (short side resized, then center-cropped): the bundled clip's
#: size, so each clip weighs the same in the statistics and a 720p sample clip costs what bbb-128 does.
DEFAULT_SIZE = (128, 128)


def default_calibration_clips(frames: int = 9, start: int = 0) -> list[str]:
    """Every clip at hand that calibration may read: the bundled clip and the fetched sample clips
    (``python -m lab data fetch``), less those whose frames ``[start, start + frames)`` touch held-out
    frames (lab.data.heldout: carphone and its twin entirely, bikes from frame 192). Never downloads.
    Which channels look redundant depends on what the clips show, so varied clips beat one."""
    return [c for c in available_clips() if not reads_heldout(c, frames, start)]


def calibration_latents(teacher, clips=None, *, frames: int = 9, size: tuple[int, int] | None = None,
                        start: int = 0) -> tuple[list[torch.Tensor], list[str]]:
    """Encode each clip (a bundled/sample name or a path) with ``teacher``; returns (latents, names).
    ``size`` (H, W) resizes and crops; by default clips are cropped to the VAE grid. ``clips=None``:
    the default calibration clips, read at DEFAULT_SIZE unless ``size`` is given."""
    if not teacher.has_encoder:
        raise LabError(f"{teacher.name} has no encoder, so it cannot turn clips into calibration latents; "
                       f"analyze with a teacher (e.g. mini-wan), or pass latents to lab.analysis.analyze().")
    if clips is None:
        clips, size = default_calibration_clips(frames, start), size or DEFAULT_SIZE
    g = teacher.geometry
    out, names = [], []
    for clip in clips:
        video = load_clip(resolve_clip(clip), frames=frames, size=size, start=start, frame_multiple=g.t,
                          spatial_multiple=g.spatial)
        with onednn_conv3d(teacher.device):  # as lab.analysis.analyze decodes: no slow_conv3d for small clips
            out.append(teacher.encode(video.to(device=teacher.device, dtype=teacher.dtype)))
        names.append(str(clip))
    return out, names

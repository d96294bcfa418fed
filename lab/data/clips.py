"""Random training windows from real clips, held in memory.

Each clip is decoded once, resized so its short side is a given length, and kept as uint8
(T, H, W, 3): a few MB per clip, so sampling a batch never touches the disk or the video decoder.
A window is ``frames`` consecutive frames (1 + 4k for Wan, 1 + 8k for LTX), a random square crop
and a random horizontal flip. Frame ranges that are held out for evaluation are simply never
sampled: a :class:`ClipSpec` names the range a clip may be sampled from.

Used by the teacher trainer (``lab.teachers``) and reusable by any trainer that wants real video.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lab.data.video import read_frames
from lab.errors import LabError, VideoShapeError


@dataclass(frozen=True)
class ClipSpec:
    """One clip to sample from: frames ``[start, stop)`` (``stop=None``: to the end)."""
    name: str
    path: str
    start: int = 0
    stop: int | None = None

    def describe(self) -> str:
        end = "end" if self.stop is None else str(self.stop)
        return f"{self.name}[{self.start}:{end}]"


def resize_short_side(frames: np.ndarray, short_side: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> uint8 with min(H, W) == short_side (antialiased bilinear when shrinking).
    Clips already at or below ``short_side`` are kept as they are: upscaling adds no detail."""
    t, h, w, _ = frames.shape
    if min(h, w) <= short_side:
        return frames
    scale = short_side / min(h, w)
    nh, nw = max(short_side, round(h * scale)), max(short_side, round(w * scale))
    out = np.empty((t, nh, nw, 3), dtype=np.uint8)
    for i in range(0, t, 16):  # 16 frames at a time: a whole 720p clip in float32 would take GBs
        x = torch.from_numpy(frames[i:i + 16]).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
        out[i:i + 16] = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


class ClipWindows:
    """In-memory clips at one or more scales, and random (crop, window, flip) batches from them.

    ``short_sides``: every clip is kept once per scale (e.g. (128, 256)), so the model sees both
    fine texture and downscaled, denser content.
    """

    def __init__(self, specs: list[ClipSpec], *, short_sides: tuple[int, ...] = (128, 256)):
        if not specs:
            raise LabError("ClipWindows needs at least one clip; pass ClipSpec(name, path, start, stop).")
        self.specs = list(specs)
        self.short_sides = tuple(short_sides)
        self.clips: list[tuple[str, np.ndarray]] = []
        for spec in specs:
            frames = read_frames(spec.path, start=spec.start,
                                 max_frames=None if spec.stop is None else spec.stop - spec.start)
            if spec.stop is not None and frames.shape[0] < spec.stop - spec.start:
                raise VideoShapeError(f"{spec.describe()}: {os.path.basename(spec.path)} has only "
                                      f"{spec.start + frames.shape[0]} frames; lower 'stop' to at most that.")
            seen = set()
            for side in self.short_sides:
                scaled = resize_short_side(frames, side)
                if scaled.shape[1:3] in seen:  # a small clip is kept once, not once per scale
                    continue
                seen.add(scaled.shape[1:3])
                self.clips.append((f"{spec.describe()}@{min(scaled.shape[1:3])}", scaled))

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for _, c in self.clips)

    def summary(self) -> list[dict]:
        return [{"clip": name, "frames": int(c.shape[0]), "height": int(c.shape[1]), "width": int(c.shape[2])}
                for name, c in self.clips]

    def to(self, device) -> "ClipWindows":
        """Keep the uint8 clips on ``device`` (e.g. the GPU: a few hundred MB at most), so batches are cut
        there and no float copy of a batch crosses the bus."""
        device = torch.device(device)
        self.clips = [(n, torch.as_tensor(c).to(device)) for n, c in self.clips]
        return self

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator) -> torch.Tensor:
        """A batch (B, 3, frames, crop, crop), float in [-1, 1], on the clips' device. Clips are drawn
        uniformly (each clip, long or short, counts the same), then a window, a crop and a flip uniformly
        within it. All draws come from one ``torch.rand`` on the CPU ``generator`` (reproducible, and no
        per-sample device round trip)."""
        usable = [c for _, c in self.clips if c.shape[0] >= frames and min(c.shape[1:3]) >= crop]
        if not usable:
            raise VideoShapeError(f"no clip has {frames} frames and a {crop}x{crop} crop; clips are "
                                  f"{[s['frames'] for s in self.summary()]} frames long with short sides "
                                  f"{self.short_sides}: ask for fewer frames or a smaller crop.")
        u = torch.rand(batch, 5, generator=generator).tolist()
        wins = []
        for r in u:
            clip = usable[_pick(len(usable), r[0])]
            t0 = _pick(clip.shape[0] - frames + 1, r[1])
            y0 = _pick(clip.shape[1] - crop + 1, r[2])
            x0 = _pick(clip.shape[2] - crop + 1, r[3])
            win = torch.as_tensor(clip[t0:t0 + frames, y0:y0 + crop, x0:x0 + crop])
            wins.append(win.flip(2) if r[4] >= 0.5 else win)
        out = torch.stack(wins)  # uint8 (B, T, crop, crop, 3), on the clips' device
        return out.permute(0, 4, 1, 2, 3).float().div_(127.5).sub_(1.0)


def _pick(n: int, u: float) -> int:
    """An index in [0, n) from a uniform draw u in [0, 1)."""
    return min(int(u * n), n - 1)

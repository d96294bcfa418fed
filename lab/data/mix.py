"""One batch from two window sources: real clips and synthetic camera moves over photos.

A fixed share of every batch (``round(batch * fraction)`` windows) comes from the photos, the rest
from the clips, so each step sees both and the share does not drift with the random draws.
"""

from __future__ import annotations

import torch

from lab.data.clips import ClipWindows
from lab.data.stills import StillWindows


class MixedWindows:
    def __init__(self, clips: ClipWindows, stills: StillWindows, fraction: float):
        if not 0 <= fraction < 1:
            raise ValueError(f"the photos' share of a batch must be in [0, 1), got {fraction}")
        self.clips, self.stills, self.fraction = clips, stills, fraction
        self.specs = clips.specs  # the real clips a card lists as training data

    def to(self, device) -> "MixedWindows":
        self.clips.to(device)
        return self

    def summary(self) -> list[dict]:
        return self.clips.summary() + self.stills.summary()

    def sample(self, batch: int, frames: int, crop: int, generator: torch.Generator) -> torch.Tensor:
        n_still = round(batch * self.fraction)
        real = self.clips.sample(batch - n_still, frames, crop, generator) if batch > n_still else None
        if not n_still:
            return real
        still = self.stills.sample(n_still, frames, crop, generator)
        return still if real is None else torch.cat([real, still.to(real.device)])

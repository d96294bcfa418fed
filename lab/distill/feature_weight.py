"""The decaying feature weight of distillation's phase 2 (METHOD.md): as the student's pixel loss falls, the
feature-matching term fades, so the late steps of the phase serve the pixels. Its state is plain numbers, so a
resumed run weighs its terms as an uninterrupted one."""

from __future__ import annotations

import math


class FeatureWeightDecay:
    """Phase 2's feature weight: ``w0 * clamp(pixel_now / pixel_at_phase_start, 0, 1)``, where both
    pixel values are EMA-smoothed so one easy batch does not switch the features off."""

    def __init__(self, w0: float, smoothing: float = 0.9):
        self.w0, self.smoothing = float(w0), smoothing
        self.start: float | None = None
        self.now: float | None = None

    def update(self, pixel: float) -> float:
        if math.isfinite(pixel):
            self.now = pixel if self.now is None else self.smoothing * self.now + (1 - self.smoothing) * pixel
            if self.start is None:
                self.start = self.now
        return self.weight

    @property
    def weight(self) -> float:
        if self.start is None or self.now is None or self.start <= 0:
            return self.w0
        return self.w0 * min(max(self.now / self.start, 0.0), 1.0)

    def state_dict(self) -> dict:
        return {"w0": self.w0, "start": self.start, "now": self.now}

    def load_state_dict(self, state: dict) -> None:
        self.w0, self.start, self.now = float(state["w0"]), state["start"], state["now"]

"""Dynamic control of a distillation run: plateau detection, the decaying feature weight, and the
per-phase learning-rate schedule. Every stateful piece has ``state_dict``/``load_state_dict`` of plain
numbers, so a resumed run takes the same decisions as an uninterrupted one."""

from __future__ import annotations

import math


class PlateauDetector:
    """Smooths a metric with an EMA and says when it stopped improving.

    ``update(value)`` returns True once the smoothed value has not beaten its best by ``min_delta``
    (relative to |best| when ``relative``) for ``patience`` consecutive updates."""

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min", relative: bool = True,
                 smoothing: float = 0.9):
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.relative, self.smoothing = relative, smoothing
        self.smoothed: float | None = None
        self.best: float | None = None
        self.bad_updates = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        margin = self.min_delta * (abs(self.best) if self.relative else 1.0)
        return value < self.best - margin if self.mode == "min" else value > self.best + margin

    def update(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        s = value if self.smoothed is None else self.smoothing * self.smoothed + (1 - self.smoothing) * value
        self.smoothed = s
        if self._improved(s):
            self.best, self.bad_updates = s, 0
        else:
            self.bad_updates += 1
        return self.bad_updates >= self.patience

    @property
    def plateaued(self) -> bool:
        return self.bad_updates >= self.patience

    def state_dict(self) -> dict:
        return {"smoothed": self.smoothed, "best": self.best, "bad_updates": self.bad_updates}

    def load_state_dict(self, state: dict) -> None:
        self.smoothed, self.best, self.bad_updates = state["smoothed"], state["best"], int(state["bad_updates"])


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


def lr_at(step_in_phase: int, phase_steps: int, base_lr: float, warmup: int, min_ratio: float) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from ``base_lr`` to ``base_lr * min_ratio`` at
    ``phase_steps`` (the phase's max_steps; a phase that ends early on a plateau just stops sooner)."""
    if warmup > 0 and step_in_phase < warmup:
        return base_lr * (step_in_phase + 1) / warmup
    span = max(1, phase_steps - warmup)
    t = min(1.0, (step_in_phase - warmup) / span)
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

"""The schedule of every training run in the lab: the learning rate (linear warmup, then cosine down to a
floor) and plateau detection (when a smoothed metric stopped improving). Teacher runs follow the LR over
their steps (or their time budget); distillation phases follow it per phase and switch on plateaus. Every
stateful piece has ``state_dict``/``load_state_dict`` of plain numbers, so a resumed run takes the same
decisions as an uninterrupted one."""

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


def lr_at(step: int, total_steps: int, base_lr: float, warmup: int, min_ratio: float,
          min_progress: float = 0.0) -> float:
    """Linear warmup over ``warmup`` steps, then cosine from ``base_lr`` to ``base_lr * min_ratio`` at
    ``total_steps`` (a distillation phase's max_steps: a phase that ends early on a plateau just stops sooner).
    ``min_progress`` moves the cosine on at least that far (a teacher run with a time budget passes the share
    of its minutes spent, so a run stopped by the clock still ends at the low learning rate)."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    span = max(1, total_steps - warmup)
    t = max(min(1.0, (step - warmup) / span), min(1.0, min_progress))
    return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t)))

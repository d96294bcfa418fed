"""The running mean every chunked metric accumulator shares: per-item values (a pixel's squared error,
an SSIM window, a frame's LPIPS distance) are summed in float64 and counted, chunk by chunk, so a
clip fed in pieces gives exactly the number of the whole-clip call."""

from __future__ import annotations

import torch


class MeanAccumulator:
    """Sum and count of values fed so far; ``mean()`` is their average.

    Subclasses implement ``update(x, y)`` (computing per-item values and calling ``add``) and, when
    the metric is not the plain mean, override ``compute()`` on top of ``mean()``."""

    #: How errors name the metric.
    name = "metric"
    #: What an empty accumulator means for this metric (completes "NAME: ...").
    empty_hint = "nothing was fed to the accumulator"

    def __init__(self):
        self.total, self.count = 0.0, 0

    def add(self, values: torch.Tensor) -> None:
        self.total += values.detach().double().sum().item()
        self.count += values.numel()

    def mean(self) -> float:
        if not self.count:
            raise ValueError(f"{self.name}: {self.empty_hint}")
        return self.total / self.count

    def compute(self) -> float:
        return self.mean()

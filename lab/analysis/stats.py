"""Streaming per-channel statistics of one tensor: the augmented Gram matrix, accumulated in float64
without ever storing activations.

For a tensor with C channels, each position (batch, time, pixel) is a vector x in R^C. We keep
G = sum [x; 1][x; 1]^T, a (C+1)x(C+1) matrix whose last row/column holds the channel sums and the
position count. That one matrix gives the covariance, the correlation, and every least-squares
problem "predict these channels from those (plus a constant)" that selection and folding need.
"""

from __future__ import annotations

import torch

from lab.errors import LabError

# Positions per float64 chunk: 65536 positions x 384 channels x 8 bytes = 200 MB at the widest Wan
# stage, so a full-size 480x832 frame is never converted to float64 in one piece.
CHUNK_POSITIONS = 65536


class ChannelStats:
    """Accumulates the augmented Gram of a tensor whose channels sit on ``channel_dim``.

    ``diag_only=True`` keeps only per-channel sums of squares (what RMS-norm rescaling needs),
    which is O(C) memory and time instead of O(C^2).
    """

    def __init__(self, channels: int, diag_only: bool = False):
        if channels < 1:
            raise LabError(f"ChannelStats needs at least one channel, got {channels}")
        self.channels = channels
        self.diag_only = diag_only
        self.count = 0
        self.sum = torch.zeros(channels, dtype=torch.float64)
        self.sumsq = torch.zeros(channels, dtype=torch.float64)
        self.gram = None if diag_only else torch.zeros(channels, channels, dtype=torch.float64)
        self.updates = 0

    def update(self, x: torch.Tensor, channel_dim: int = 1) -> None:
        x = x.detach()
        if x.shape[channel_dim] != self.channels:
            raise LabError(f"ChannelStats was built for {self.channels} channels but got a tensor of shape "
                           f"{tuple(x.shape)} (channel axis {channel_dim}); the hooked module changed width.")
        x = x.movedim(channel_dim, 0)
        c = self.channels
        # One (C, positions) slab per leading index keeps the copies small (a frame at a time).
        slabs = x.reshape(c, x.shape[1], -1) if x.ndim > 2 else x.reshape(c, 1, -1)
        for i in range(slabs.shape[1]):
            slab = slabs[:, i]
            for start in range(0, slab.shape[1], CHUNK_POSITIONS):
                part = slab[:, start:start + CHUNK_POSITIONS].to(torch.float64)
                self.count += part.shape[1]
                self.sum += part.sum(dim=1)
                if self.gram is None:
                    self.sumsq += (part * part).sum(dim=1)
                else:
                    g = part @ part.T
                    self.gram += g
                    self.sumsq += torch.diagonal(g)
        self.updates += 1

    # ----- derived quantities ------------------------------------------------------------------
    def augmented(self) -> torch.Tensor:
        """[[sum x x^T, sum x], [sum x^T, n]], the matrix every least-squares solve here uses."""
        self._need_gram("augmented Gram")
        c = self.channels
        g = torch.empty(c + 1, c + 1, dtype=torch.float64)
        g[:c, :c] = self.gram
        g[:c, c] = self.sum
        g[c, :c] = self.sum
        g[c, c] = float(self.count)
        return g

    def mean(self) -> torch.Tensor:
        self._need_data()
        return self.sum / self.count

    def second_moment(self) -> torch.Tensor:
        """E[x_i^2] per channel."""
        self._need_data()
        return self.sumsq / self.count

    def variance(self) -> torch.Tensor:
        m = self.mean()
        return (self.second_moment() - m * m).clamp_min(0.0)

    def covariance(self) -> torch.Tensor:
        self._need_gram("covariance")
        m = self.mean()
        return self.gram / self.count - torch.outer(m, m)

    def correlation(self) -> torch.Tensor:
        cov = self.covariance()
        d = torch.sqrt(torch.diagonal(cov).clamp_min(1e-30))
        return (cov / torch.outer(d, d)).clamp(-1.0, 1.0)

    def merge(self, other: "ChannelStats") -> None:
        if other.channels != self.channels or other.diag_only != self.diag_only:
            raise LabError("cannot merge ChannelStats of different widths or kinds")
        self.count += other.count
        self.sum += other.sum
        self.sumsq += other.sumsq
        if self.gram is not None:
            self.gram += other.gram
        self.updates += other.updates

    def _need_data(self) -> None:
        if self.count == 0:
            raise LabError("no activations were recorded for this tensor yet; stream at least one clip "
                           "(for Wan, at least two latent frames reach the temporal upsamplers).")

    def _need_gram(self, what: str) -> None:
        self._need_data()
        if self.gram is None:
            raise LabError(f"this tensor was recorded with diag_only=True, so its {what} is not available")

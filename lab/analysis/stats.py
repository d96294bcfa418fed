"""Streaming per-channel statistics of one tensor: the augmented Gram matrix, accumulated in float64
without ever storing activations.

For a tensor with C channels, each position (batch, time, pixel) is a vector x in R^C. We keep
G = sum [x; 1][x; 1]^T, a (C+1)x(C+1) matrix whose last row/column holds the channel sums and the
position count. That one matrix gives the covariance, the correlation, and every least-squares
problem "predict these channels from those (plus a constant)" that selection and folding need.

Device: the accumulators live on the device of the tensors fed in (a CUDA teacher's activations are
never copied to the host); derived quantities (``augmented``, ``covariance``, ...) come back on the
CPU, where the linear algebra (solves, eigendecompositions) runs.
"""

from __future__ import annotations

import torch

from lab.errors import LabError

# Positions per float64 chunk: 65536 positions x 384 channels x 8 bytes = 200 MB at the widest Wan
# stage, so a full-size 480x832 frame is never converted to float64 in one piece.
CHUNK_POSITIONS = 65536


def chunk_dtype(x: torch.Tensor) -> torch.dtype:
    """Precision of one chunk's sums and products before they join the float64 accumulators. The CPU
    keeps float64 (cheap there, and exact collinearity stays exact: linalg's RIDGE and GREEDY_FLOOR
    assume it); accelerators use float32, as float64 matmuls run at 1/32-1/64 speed on consumer GPUs,
    unless TF32 matmuls are on (10-bit mantissas: ~1e-3 errors in the Gram), which we never flip."""
    if x.device.type == "cpu" or x.dtype == torch.float64:
        return torch.float64
    return torch.float64 if x.device.type == "cuda" and _cuda_tf32() else torch.float32


def _cuda_tf32() -> bool:
    try:
        return bool(torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # torch refuses to answer after a mix of its old and new precision APIs
        return True


class ChannelStats:
    """Accumulates the augmented Gram of a tensor whose channels sit on ``channel_dim``.

    ``diag_only=True`` keeps only per-channel sums of squares (what RMS-norm rescaling needs),
    which is O(C) memory and time instead of O(C^2).
    """

    def __init__(self, channels: int, diag_only: bool = False, device: torch.device | str | None = None):
        if channels < 1:
            raise LabError(f"ChannelStats needs at least one channel, got {channels}")
        self.channels = channels
        self.diag_only = diag_only
        self.count = 0
        f64 = {"dtype": torch.float64, "device": device}
        self.sum = torch.zeros(channels, **f64)
        self.sumsq = torch.zeros(channels, **f64)
        self.gram = None if diag_only else torch.zeros(channels, channels, **f64)
        self.updates = 0

    @property
    def device(self) -> torch.device:
        return self.sum.device

    def to(self, device: torch.device | str) -> "ChannelStats":
        """Move the accumulators (in place); returns self."""
        self.sum, self.sumsq = self.sum.to(device), self.sumsq.to(device)
        if self.gram is not None:
            self.gram = self.gram.to(device)
        return self

    def update(self, x: torch.Tensor, channel_dim: int = 1) -> None:
        x = x.detach()
        if x.shape[channel_dim] != self.channels:
            raise LabError(f"ChannelStats was built for {self.channels} channels but got a tensor of shape "
                           f"{tuple(x.shape)} (channel axis {channel_dim}); the hooked module changed width.")
        if x.device != self.device:
            self.to(x.device)  # adding device tensors into host sums fails on CUDA (and would sync anyway)
        x = x.movedim(channel_dim, 0)
        c = self.channels
        dtype = chunk_dtype(x)
        # One (C, positions) slab per leading index keeps the copies small (a frame at a time).
        slabs = x.reshape(c, x.shape[1], -1) if x.ndim > 2 else x.reshape(c, 1, -1)
        for i in range(slabs.shape[1]):
            slab = slabs[:, i]
            for start in range(0, slab.shape[1], CHUNK_POSITIONS):
                part = slab[:, start:start + CHUNK_POSITIONS].to(dtype)
                self.count += part.shape[1]
                self.sum += part.sum(dim=1).double()
                if self.gram is None:
                    self.sumsq += (part * part).sum(dim=1).double()
                else:
                    g = (part @ part.T).double()
                    self.gram += g
                    self.sumsq += torch.diagonal(g)
        self.updates += 1

    # ----- derived quantities ------------------------------------------------------------------
    def augmented(self) -> torch.Tensor:
        """[[sum x x^T, sum x], [sum x^T, n]], the matrix every least-squares solve here uses."""
        self._need_gram("augmented Gram")
        c = self.channels
        s = self.sum.cpu()
        g = torch.empty(c + 1, c + 1, dtype=torch.float64)  # on the CPU: its consumers solve and decompose it
        g[:c, :c] = self.gram.cpu()
        g[:c, c] = s
        g[c, :c] = s
        g[c, c] = float(self.count)
        return g

    def mean(self) -> torch.Tensor:
        self._need_data()
        return self.sum.cpu() / self.count

    def second_moment(self) -> torch.Tensor:
        """E[x_i^2] per channel."""
        self._need_data()
        return self.sumsq.cpu() / self.count

    def variance(self) -> torch.Tensor:
        m = self.mean()
        return (self.second_moment() - m * m).clamp_min(0.0)

    def covariance(self) -> torch.Tensor:
        self._need_gram("covariance")
        m = self.mean()
        return self.gram.cpu() / self.count - torch.outer(m, m)

    def correlation(self) -> torch.Tensor:
        cov = self.covariance()
        d = torch.sqrt(torch.diagonal(cov).clamp_min(1e-30))
        return (cov / torch.outer(d, d)).clamp(-1.0, 1.0)

    def merge(self, other: "ChannelStats") -> None:
        if other.channels != self.channels or other.diag_only != self.diag_only:
            raise LabError("cannot merge ChannelStats of different widths or kinds")
        self.count += other.count
        self.sum += other.sum.to(self.device)
        self.sumsq += other.sumsq.to(self.device)
        if self.gram is not None:
            self.gram += other.gram.to(self.device)
        self.updates += other.updates

    def _need_data(self) -> None:
        if self.count == 0:
            raise LabError("no activations were recorded for this tensor yet; stream at least one clip "
                           "(for Wan, at least two latent frames reach the temporal upsamplers).")

    def _need_gram(self, what: str) -> None:
        self._need_data()
        if self.gram is None:
            raise LabError(f"this tensor was recorded with diag_only=True, so its {what} is not available")

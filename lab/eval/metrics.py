"""Reconstruction metrics on video tensors in [-1, 1], (N, 3, T, H, W).

Every metric comes two ways: a function on whole clips (``psnr(x, y)``) and an accumulator fed
chunk by chunk along time (``PSNR().update(x_chunk, y_chunk)`` ... ``.compute()``), which gives the
same number as the whole-clip call, so a streaming decoder can be scored without holding the clip.
The functions are implemented through the accumulators, so the two cannot drift apart.
"""

from __future__ import annotations

import math

import torch

from lab.eval.accumulate import MeanAccumulator


def check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if not (torch.is_tensor(x) and torch.is_tensor(y)):
        raise TypeError(f"{what}: expects two torch.Tensors, got {type(x).__name__} and {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"{what}: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}; compare a decode with "
                         f"the clip it reconstructs (same frames and size)")
    if x.ndim != 5 or x.shape[1] != 3:
        raise ValueError(f"{what}: expects video as (N, 3, T, H, W) in [-1, 1], got {tuple(x.shape)}")


class PSNR(MeanAccumulator):
    """Accumulates the squared error; the result is PSNR over everything fed so far."""

    name = "psnr"

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "PSNR":
        check_pair(x, y, "psnr")
        self.add((x.double() - y.double()) ** 2)
        return self

    def compute(self) -> float:
        mse = self.mean()
        # Peak-to-peak of [-1, 1] is 2, so MAX^2 = 4: the same number as PSNR of the [0, 255] frames.
        return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB over the whole tensor, for signals in [-1, 1] (peak-to-peak 2),
    which equals PSNR of the same frames in [0, 255]."""
    return PSNR().update(x, y).compute()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(r ** 2) / (2 * sigma ** 2))
    return g / g.sum()


class SSIM(MeanAccumulator):
    """Structural similarity (Wang et al. 2004): Gaussian window 11, sigma 1.5, K1=0.01, K2=0.03,
    computed per frame and per RGB channel and averaged over all of them. Statistics use only
    windows fully inside the frame (a 'valid' filter), which is exactly what scikit-image's
    ``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` averages
    after cropping its padded borders. The [-1, 1] input is mapped to [0, 1] first: the luminance
    term depends on the absolute means, so SSIM is defined on frames in [0, 1] (data range 1) or,
    equivalently, [0, 255] (data range 255), not on the signed range."""

    K1, K2, DATA_RANGE = 0.01, 0.03, 1.0
    name = "ssim"

    def __init__(self, window: int = 11, sigma: float = 1.5):
        super().__init__()
        self.window = window
        self._taps = [float(v) for v in _gaussian_window(window, sigma)]

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        """Separable Gaussian, no padding: (B, 1, H, W) -> (B, 1, H-10, W-10), as a weighted sum of shifted views
        along W, then along H. The same sums as a float64 conv2d, which has no fast CPU kernel (im2col + GEMM):
        4x (480x832) to 6x (144x176) faster, equal to it on the tests' frames."""
        k = len(self._taps)
        for dim in (-1, -2):
            n = x.shape[dim] - k + 1
            out = x.narrow(dim, 0, n) * self._taps[0]
            for i in range(1, k):
                out.add_(x.narrow(dim, i, n), alpha=self._taps[i])
            x = out
        return x

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "SSIM":
        check_pair(x, y, "ssim")
        h, w = x.shape[-2:]
        if h < self.window or w < self.window:
            raise ValueError(f"ssim: frames of {h}x{w} are smaller than the {self.window}-pixel window")
        # (N, 3, T, H, W) -> (N*3*T, 1, H, W) in float64, as the reference implementations compute.
        a = (x.detach().double().reshape(-1, 1, h, w) + 1.0) / 2.0
        b = (y.detach().double().reshape(-1, 1, h, w) + 1.0) / 2.0
        c1, c2 = (self.K1 * self.DATA_RANGE) ** 2, (self.K2 * self.DATA_RANGE) ** 2
        mu_a, mu_b = self._blur(a), self._blur(b)
        var_a = self._blur(a * a) - mu_a ** 2
        var_b = self._blur(b * b) - mu_b ** 2
        cov = self._blur(a * b) - mu_a * mu_b
        s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        self.add(s)
        return self


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean SSIM over all frames and RGB channels of two videos in [-1, 1] (see :class:`SSIM`)."""
    return SSIM().update(x, y).compute()


class TemporalConsistency(MeanAccumulator):
    """Frame-difference error: the mean absolute difference between the consecutive-frame
    differences of the two videos, ``|(x[t+1] - x[t]) - (y[t+1] - y[t])|``, in [0, 255] units.
    It is zero when a decode flickers exactly as the reference moves (a constant offset is not
    penalised) and grows with temporal flicker that the per-frame metrics do not see. Streaming
    keeps the last frame of each chunk so the pair across a chunk boundary is counted once."""

    name = "temporal consistency"
    empty_hint = "needs at least 2 frames"

    def __init__(self):
        super().__init__()
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "TemporalConsistency":
        check_pair(x, y, "temporal consistency")
        x, y = x.detach().double(), y.detach().double()
        if self._last is not None:
            if self._last[0].shape[:2] + self._last[0].shape[3:] != x.shape[:2] + x.shape[3:]:
                raise ValueError(f"temporal consistency: a chunk of shape {tuple(x.shape)} does not continue the "
                                 f"previous one ({tuple(self._last[0].shape)}); feed chunks of one clip in order")
            x = torch.cat([self._last[0], x], dim=2)
            y = torch.cat([self._last[1], y], dim=2)
        if x.shape[2] > 1:
            d = (x[:, :, 1:] - x[:, :, :-1]) - (y[:, :, 1:] - y[:, :, :-1])
            self.add(d.abs())
        self._last = (x[:, :, -1:], y[:, :, -1:])
        return self

    def compute(self) -> float:
        return self.mean() * 127.5  # [-1, 1] differences -> [0, 255] units


def temporal_consistency(x: torch.Tensor, y: torch.Tensor) -> float:
    """Frame-difference error (0 is best) in [0, 255] units; see :class:`TemporalConsistency`."""
    return TemporalConsistency().update(x, y).compute()


def psnr_by_latent_frame(x: torch.Tensor, y: torch.Tensor, t: int) -> list[float]:
    """PSNR (dB) of the output frames each latent frame of a causal video VAE decodes: the first latent frame gives
    frame 0, every later one the next ``t`` frames (``t``: the VAE's temporal compression, 4 for Wan, 8 for LTX).
    A decoder trained on short windows can match its reference on the first latent frames and drift after them
    (its causal caches never held that much history in training); the whole-clip PSNR averages that away."""
    check_pair(x, y, "psnr_by_latent_frame")
    frames = x.shape[2]
    if t < 1 or (frames - 1) % t:
        raise ValueError(f"psnr_by_latent_frame: {frames} frames are not 1 + {t}k, the frame count a causal VAE "
                         f"with temporal compression {t} decodes")
    return [psnr(x[:, :, s:s + n], y[:, :, s:s + n])
            for s, n in [(0, 1), *((1 + t * k, t) for k in range((frames - 1) // t))]]

"""Learned metrics on video tensors in [-1, 1], (N, 3, T, H, W): LPIPS (per frame, mean), FID (frames of
the two videos as two image sets) and video FID (VideoMAE embeddings of non-overlapping 8-frame clips).

Each is an accumulator fed chunk by chunk along time (same result as one call on the whole clip)
plus a function. The backbone is loaded from its public weights unless one is passed in, which is how
the tests run the real code paths on randomly initialised networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lab.eval.accumulate import MeanAccumulator
from lab.eval.frechet import GaussianStats, frechet_from_stats
from lab.eval.metrics import check_pair
from lab.eval.backbones import load_inception, load_lpips, load_videomae

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, T, H, W) -> (N*T, 3, H, W)."""
    return x.permute(0, 2, 1, 3, 4).reshape(-1, 3, *x.shape[-2:])


def _param(net) -> torch.Tensor:
    return next(net.parameters())


class LPIPS(MeanAccumulator):
    """Mean LPIPS over the frames fed so far."""

    name = "lpips"

    def __init__(self, net=None, batch: int = 8):
        super().__init__()
        if net is None:
            net = load_lpips()
        self.net, self.batch = net, batch

    @torch.no_grad()
    def update(self, x: torch.Tensor, y: torch.Tensor) -> "LPIPS":
        check_pair(x, y, "lpips")
        p = _param(self.net)
        a, b = _frames(x), _frames(y)
        for i in range(0, a.shape[0], self.batch):
            d = self.net(a[i:i + self.batch].to(p), b[i:i + self.batch].to(p))
            self.add(d)
        return self


def lpips(x: torch.Tensor, y: torch.Tensor, net=None) -> float:
    """Mean LPIPS (VGG, v0.1) over the frames of two videos; lower is better."""
    return LPIPS(net).update(x, y).compute()


class _FrechetPair:
    """Two feature sets, x (e.g. decodes) and y (e.g. real clips), and their Frechet distance."""

    def __init__(self):
        self.sx, self.sy = GaussianStats(), GaussianStats()

    def compute(self) -> float:
        return frechet_from_stats(self.sx, self.sy)


class FID(_FrechetPair):
    """FID between the frames of x and the frames of y (InceptionV3 pool3, pytorch-fid weights)."""

    def __init__(self, net=None, batch: int = 16):
        super().__init__()
        if net is None:
            net = load_inception()
        self.net, self.batch = net, batch

    @torch.no_grad()
    def _feats(self, v: torch.Tensor) -> torch.Tensor:
        p, f = _param(self.net), _frames(v)
        return torch.cat([self.net(f[i:i + self.batch].to(p)).double() for i in range(0, f.shape[0], self.batch)])

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "FID":
        check_pair(x, y, "fid")
        self.sx.update(self._feats(x))
        self.sy.update(self._feats(y))
        return self


def fid(x: torch.Tensor, y: torch.Tensor, net=None) -> float:
    return FID(net).update(x, y).compute()


class VideoFID(_FrechetPair):
    """Frechet distance of VideoMAE(-V2) embeddings (mean of the last hidden states) of
    non-overlapping 8-frame clips. Frames left over at a chunk boundary wait for the next chunk;
    a tail shorter than 8 frames at the end is not scored."""

    def __init__(self, model=None, batch: int = 4):
        super().__init__()
        if model is None:
            model = load_videomae()
        self.model, self.batch = model, batch
        self.frames = model.config.num_frames
        self.size = model.config.image_size
        self._pending: tuple[torch.Tensor, torch.Tensor] | None = None

    def _prep(self, clips: torch.Tensor) -> torch.Tensor:
        # (B, 3, F, H, W) in [-1, 1] -> (B, F, 3, S, S), ImageNet-normalised as VideoMAE was trained.
        p = _param(self.model)
        b, _, f, h, w = clips.shape
        x = _frames(clips)
        x = F.interpolate(x.float(), size=(self.size, self.size), mode="bilinear", align_corners=False,
                          antialias=min(h, w) > self.size)
        x = (x + 1) / 2
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x - mean) / std).reshape(b, f, 3, self.size, self.size).to(p)

    @torch.no_grad()
    def _embed(self, clips: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, clips.shape[0], self.batch):
            hidden = self.model(pixel_values=self._prep(clips[i:i + self.batch])).last_hidden_state
            out.append(hidden.mean(dim=1).double())
        return torch.cat(out)

    def _clips(self, v: torch.Tensor) -> torch.Tensor:
        # (N, 3, k*F, H, W) -> (N*k, 3, F, H, W)
        n, c, t, h, w = v.shape
        k = t // self.frames
        return v.reshape(n, c, k, self.frames, h, w).permute(0, 2, 1, 3, 4, 5).reshape(n * k, c, self.frames, h, w)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "VideoFID":
        check_pair(x, y, "video fid")
        if self._pending is not None:
            x, y = torch.cat([self._pending[0], x], 2), torch.cat([self._pending[1], y], 2)
        usable = x.shape[2] // self.frames * self.frames
        self._pending = (x[:, :, usable:], y[:, :, usable:]) if usable < x.shape[2] else None
        if usable:
            self.sx.update(self._embed(self._clips(x[:, :, :usable])))
            self.sy.update(self._embed(self._clips(y[:, :, :usable])))
        return self


def video_fid(x: torch.Tensor, y: torch.Tensor, model=None) -> float:
    return VideoFID(model).update(x, y).compute()

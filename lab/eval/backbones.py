"""Feature extractors for LPIPS, FID and video FID, in plain torch (torchvision does not import here).

- :class:`LPIPSNet`: LPIPS v0.1 over VGG16 (Zhang et al. 2018). ``net.features.*`` keys are
  torchvision's ``vgg16`` keys and ``lin0..lin4.model.1.weight`` the keys of the lpips package's
  ``weights/v0.1/vgg.pth``, so both public files load unchanged.
- :class:`FIDInceptionV3`: the pytorch-fid InceptionV3 (TF-ported FID weights, its own pooling
  variants in blocks A/C/E), keys as in ``pt_inception-2015-12-05-6726825d.pth``; 2048-d pool features.
- :func:`build_videomae`: ``transformers``' VideoMAE configured for 8-frame clips, for video FID.

Weights never ship with the lab. They load from ``$LAB_METRIC_WEIGHTS`` (default ``data/metric_weights``).
A missing file is an error naming the file, the folder and where to get it. The lab downloads it from
its public URL only when the user allowed downloads (``LAB_ALLOW_DOWNLOADS=1``, or a command's
``--allow-downloads``) and the machine is not marked offline: a configured perceptual loss must never
reach the network behind the user's back.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lab import paths
from lab.errors import WeightsNotFoundError
from lab.files import atomic_write_bytes

#: file name -> public URL
WEIGHT_FILES = {
    "vgg16-397923af.pth": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "lpips_vgg_v0.1.pth": "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    "pt_inception-2015-12-05-6726825d.pth":
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
}
VIDEOMAE_DIR = "videomae-v2"


def weights_dir() -> Path:
    return Path(os.environ.get("LAB_METRIC_WEIGHTS", paths.data_dir() / "metric_weights"))


def _offline() -> bool:
    return any(os.environ.get(k, "") not in ("", "0") for k in ("HF_HUB_OFFLINE", "LAB_OFFLINE"))


def downloads_allowed() -> bool:
    """True only when the user asked for downloads (LAB_ALLOW_DOWNLOADS=1) and nothing marks the machine offline."""
    return os.environ.get("LAB_ALLOW_DOWNLOADS", "") not in ("", "0") and not _offline()


def weight_file(name: str, metric: str) -> Path:
    """Local path of a public weights file; downloaded once only when downloads_allowed()."""
    path = weights_dir() / name
    if path.exists():
        return path
    url = WEIGHT_FILES[name]
    if _offline():
        reason = "offline mode (HF_HUB_OFFLINE / LAB_OFFLINE)"
    elif not downloads_allowed():
        reason = "downloads are off; LAB_ALLOW_DOWNLOADS=1 or --allow-downloads lets the lab fetch it"
    else:
        try:
            return _download(url, path)
        except OSError as exc:
            reason = f"download failed: {exc}"
    raise WeightsNotFoundError(
        f"{metric} needs the weights file {path} ({reason}). Download {url} on a machine with network "
        f"access and put it at {path} (or point LAB_METRIC_WEIGHTS at the folder that holds it).")


def _download(url: str, path: Path) -> Path:
    with urllib.request.urlopen(url, timeout=15) as r:
        return atomic_write_bytes(path, r.read())


def _load_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or non-torch file
        raise WeightsNotFoundError(f"{path} is not a readable torch state dict ({exc}); download it again.") from exc


# ----- LPIPS over VGG16 -----------------------------------------------------------------------------
VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
#: ends (exclusive) of the slices relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in ``features``
LPIPS_TAPS = (4, 9, 16, 23, 30)
LPIPS_CHANNELS = (64, 128, 256, 512, 512)


class VGG16Features(nn.Module):
    """torchvision's ``vgg16().features`` up to relu5_3 (the last max-pool is never used)."""

    def __init__(self):
        super().__init__()
        layers, c = [], 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
                c = v
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, start = [], 0
        for end in LPIPS_TAPS:
            for layer in self.features[start:end]:
                x = layer(x)
            taps.append(x)
            start = end
        return taps


class _Lin(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        # index 0 is lpips' (inactive in eval) dropout; keeps the key ``model.1.weight``
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(c, 1, 1, bias=False))
        # LPIPS constrains these weights to be non-negative (a distance); keep that at random init too.
        with torch.no_grad():
            self.model[1].weight.abs_()


class LPIPSNet(nn.Module):
    """LPIPS distance per image: frames (B, 3, H, W) in [-1, 1] -> (B,)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = VGG16Features()
        for i, c in enumerate(LPIPS_CHANNELS):
            setattr(self, f"lin{i}", _Lin(c))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.net((x - self.shift) / self.scale), self.net((y - self.shift) / self.scale)
        total = 0
        for i, (a, b) in enumerate(zip(fx, fy)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{i}").model((a - b) ** 2).mean(dim=(2, 3))
        return total.flatten()


def load_lpips(device="cpu") -> LPIPSNet:
    net = LPIPSNet()
    vgg = _load_state(weight_file("vgg16-397923af.pth", "LPIPS (VGG16 backbone)"))
    net.net.load_state_dict({k: v for k, v in vgg.items() if k.startswith("features.")})
    lin = _load_state(weight_file("lpips_vgg_v0.1.pth", "LPIPS (linear layers)"))
    net.load_state_dict({k: v for k, v in lin.items() if k.startswith("lin")}, strict=False)
    missing = [f"lin{i}.model.1.weight" for i in range(5) if f"lin{i}.model.1.weight" not in lin]
    if missing:
        raise WeightsNotFoundError(f"the LPIPS linear weights file lacks {missing}; it must be lpips' v0.1/vgg.pth")
    return net.eval().requires_grad_(False).to(device)


# ----- InceptionV3, the pytorch-fid variant ------------------------------------------------------------
class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, k, s=1, p=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _avg(x):  # the TF FID graph averages over valid pixels only
    return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64, 1)
        self.branch5x5_1, self.branch5x5_2 = BasicConv2d(cin, 48, 1), BasicConv2d(48, 64, 5, p=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = BasicConv2d(64, 96, 3, p=1), BasicConv2d(96, 96, 3, p=1)
        self.branch_pool = BasicConv2d(cin, pool, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(_avg(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384, 3, s=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
        self.branch3x3dbl_2, self.branch3x3dbl_3 = BasicConv2d(64, 96, 3, p=1), BasicConv2d(96, 96, 3, s=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x), self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        h, v = dict(k=(1, 7), p=(0, 3)), dict(k=(7, 1), p=(3, 0))
        self.branch1x1 = BasicConv2d(cin, 192, 1)
        self.branch7x7_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7_2, self.branch7x7_3 = BasicConv2d(c7, c7, **h), BasicConv2d(c7, 192, **v)
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
        self.branch7x7dbl_2, self.branch7x7dbl_3 = BasicConv2d(c7, c7, **v), BasicConv2d(c7, c7, **h)
        self.branch7x7dbl_4, self.branch7x7dbl_5 = BasicConv2d(c7, c7, **v), BasicConv2d(c7, 192, **h)
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, f"branch7x7dbl_{i}")(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(_avg(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1, self.branch3x3_2 = BasicConv2d(cin, 192, 1), BasicConv2d(192, 320, 3, s=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), p=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), p=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, s=2)

    def forward(self, x):
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    def __init__(self, cin, max_pool: bool):
        super().__init__()
        self.max_pool = max_pool  # pytorch-fid's FIDInceptionE_2 max-pools where E_1 averages
        self.branch1x1 = BasicConv2d(cin, 320, 1)
        self.branch3x3_1 = BasicConv2d(cin, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), p=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), p=(1, 0))
        self.branch3x3dbl_1, self.branch3x3dbl_2 = BasicConv2d(cin, 448, 1), BasicConv2d(448, 384, 3, p=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), p=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), p=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192, 1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pool = F.max_pool2d(x, 3, 1, 1) if self.max_pool else _avg(x)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d), self.branch_pool(pool)], 1)


class FIDInceptionV3(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] -> 2048-d pool3 features, resized to 299x299 as pytorch-fid does."""

    def __init__(self, resize: int | None = 299):
        super().__init__()
        self.resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, s=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, p=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b, self.Mixed_5c, self.Mixed_5d = InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b, self.Mixed_6c = InceptionC(768, 128), InceptionC(768, 160)
        self.Mixed_6d, self.Mixed_6e = InceptionC(768, 160), InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b, self.Mixed_7c = InceptionE(1280, max_pool=False), InceptionE(2048, max_pool=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(F.max_pool2d(x, 3, 2)))
        x = F.max_pool2d(x, 3, 2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean(dim=(2, 3))


def load_inception(device="cpu") -> FIDInceptionV3:
    net = FIDInceptionV3()
    state = _load_state(weight_file("pt_inception-2015-12-05-6726825d.pth", "FID (InceptionV3)"))
    # The file also holds the 1008-way classifier (fc.*), which FID does not use.
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    return net.eval().requires_grad_(False).to(device)


# ----- VideoMAE(-V2) for video FID -------------------------------------------------------------------
VIDEOMAE_FRAMES = 8


def build_videomae(config: dict | None = None, source: str | None = None):
    """A ``transformers`` VideoMAEModel for 8-frame clips: from ``source`` (a transformers folder or
    hub id) or, with ``source=None`` and a ``config``, at random init (tests)."""
    try:
        # deferred: transformers is optional (only the video FID needs it)
        from transformers import VideoMAEConfig, VideoMAEModel
    except ImportError as exc:
        raise WeightsNotFoundError("video FID needs transformers: pip install 'vaed-lab[pipelines]'") from exc
    if source is None:
        cfg = VideoMAEConfig(**{"num_frames": VIDEOMAE_FRAMES, **(config or {})})
        return VideoMAEModel(cfg).eval().requires_grad_(False)
    try:
        model = VideoMAEModel.from_pretrained(source, num_frames=VIDEOMAE_FRAMES)
    except OSError as exc:
        raise WeightsNotFoundError(f"cannot load VideoMAE from '{source}' ({exc})") from exc
    return model.eval().requires_grad_(False)


def load_videomae(device="cpu", source: str | None = None):
    """The video-FID backbone: ``source``, else ``$LAB_METRIC_WEIGHTS/videomae-v2`` (a transformers
    VideoMAE folder: config.json + model.safetensors, e.g. VideoMAE-V2 converted with save_pretrained)."""
    folder = weights_dir() / VIDEOMAE_DIR
    if source is None:
        if not (folder / "config.json").exists():
            raise WeightsNotFoundError(
                f"video FID needs VideoMAE-V2 weights as a transformers folder at {folder} (config.json and "
                f"model.safetensors of a VideoMAEModel; convert the OpenGVLab VideoMAE-V2 checkpoint with "
                f"VideoMAEModel.save_pretrained), or pass a hub id / folder as source.")
        source = str(folder)
    return build_videomae(source=source).to(device)

"""Score a decoder's reconstruction of a real clip: the teacher's encoder makes the latents, the
decoder decodes them, metrics compare the decode with the clip (and, for a student, with the
teacher's own decode of the same latents)."""

from __future__ import annotations

import logging

import torch

from lab.data.samples import resolve_clip
from lab.data.video import load_clip, probe
from lab.errors import LabError
from lab.models import load_decoder
from lab.models.interface import VideoDecoder

log = logging.getLogger("lab")

#: metric name (as in --metrics and the JSON keys) -> whether it needs downloaded backbone weights
METRICS = {"psnr": False, "ssim": False, "vmaf": False, "temporal": False,
           "lpips": True, "fid": True, "video_fid": True}
DEFAULT_METRICS = ("psnr", "ssim", "vmaf", "temporal")


def parse_metrics(text: str | None) -> list[str]:
    names = list(DEFAULT_METRICS) if not text else [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise LabError(f"unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    return names


class MetricSet:
    """The requested metrics as accumulators; backbones are loaded once and shared."""

    def __init__(self, names: list[str], fps: float = 24.0):
        self.names, self.fps = names, fps
        self._nets: dict = {}

    def _net(self, key, loader):
        if key not in self._nets:
            self._nets[key] = loader()
        return self._nets[key]

    def prepare(self) -> "MetricSet":
        """Load the backbones now, so missing weights fail before any decoding is spent."""
        from lab.eval import backbones as b  # deferred: keeps the one-letter aliases out of the module namespace
        loaders = {"lpips": b.load_lpips, "fid": b.load_inception, "video_fid": b.load_videomae}
        for name in self.names:
            if name in loaders:
                self._net(name, loaders[name])
        return self

    def accumulators(self) -> dict:
        from lab.eval import metrics as m  # deferred: as in prepare (one-letter aliases)
        out = {}
        for name in self.names:
            if name == "psnr":
                out[name] = m.PSNR()
            elif name == "ssim":
                out[name] = m.SSIM()
            elif name == "temporal":
                out[name] = m.TemporalConsistency()
            elif name == "vmaf":
                from lab.eval.vmaf import VMAF  # deferred: with the aliases above, for symmetry
                out[name] = VMAF(fps=self.fps)
            else:
                # deferred: as in prepare (one-letter aliases)
                from lab.eval import backbones as b
                from lab.eval import perceptual as p
                if name == "lpips":
                    out[name] = p.LPIPS(self._net("lpips", b.load_lpips))
                elif name == "fid":
                    out[name] = p.FID(self._net("fid", b.load_inception))
                else:
                    out[name] = p.VideoFID(self._net("video_fid", b.load_videomae))
        return out

    def score(self, x: torch.Tensor, y: torch.Tensor) -> dict:
        """Every metric of decode ``x`` against reference ``y`` (whole clips)."""
        x, y = x.detach().float().cpu(), y.detach().float().cpu()
        result = {}
        for name, acc in self.accumulators().items():
            try:
                result[name] = acc.update(x, y).compute()
            finally:
                if hasattr(acc, "close"):
                    acc.close()
        return result


def _load(name, weights, device, dtype) -> VideoDecoder:
    # Random-init models (tests, --weights random) must be the same across runs and processes.
    torch.manual_seed(0)
    return load_decoder(name, weights=weights, device=device, dtype=dtype)


def evaluate(decoder: str | VideoDecoder, video: str, *, teacher: str | VideoDecoder | None = None,
             weights: str | None = None, teacher_weights: str | None = None, frames: int = 17,
             size: tuple[int, int] | None = None, metrics: list[str] | None = None,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    names = list(metrics or DEFAULT_METRICS)
    dec = _load(decoder, weights, device, dtype)
    if teacher is None:
        teacher = dec if dec.has_encoder and dec.family == "teacher" else dec.teacher_name
        if teacher is None:
            raise LabError(f"{dec.name} has no encoder and names no teacher; pass --teacher T (the VAE whose "
                           f"latents it decodes).")
    # Naming the decoder itself as its teacher reuses it (and its --weights) unless other weights are asked for.
    same = teacher is dec or (isinstance(teacher, str) and teacher == decoder and teacher_weights in (None, weights))
    tea = dec if same else _load(teacher, teacher_weights, device, dtype)
    if not tea.has_encoder:
        raise LabError(f"the teacher {tea.name} has no encoder, so it cannot make the latents; pass a teacher VAE.")
    if tea.geometry != dec.geometry:
        raise LabError(f"{dec.name} decodes {dec.geometry.channels}-channel latents with compression "
                       f"{dec.geometry.compression}, but {tea.name} makes {tea.geometry.channels}-channel latents "
                       f"with {tea.geometry.compression}; pair a decoder with its own teacher.")
    path = resolve_clip(video)
    g = tea.geometry
    clip = load_clip(path, frames=frames, size=size, frame_multiple=g.t, spatial_multiple=g.spatial)
    fps = probe(path)["fps"] or 24.0
    ms = MetricSet(names, fps=fps).prepare()
    log.info("eval: %s on %s, clip %s, latents from %s", dec.name, path.name, tuple(clip.shape), tea.name)
    z = tea.encode(clip.to(device=device, dtype=dtype))
    recon = dec.decode(z)
    result = {"decoder": dec.name, "teacher": tea.name, "clip": str(path), "video_shape": list(clip.shape),
              "latents_shape": list(z.shape), "metrics": names, **ms.score(recon, clip)}
    if tea is not dec:
        teacher_recon = tea.decode(z)
        result["teacher_vs_clip"] = ms.score(teacher_recon, clip)
        result["vs_teacher"] = ms.score(recon, teacher_recon)
        if "psnr" in names:
            result["retention"] = result["psnr"] / result["teacher_vs_clip"]["psnr"]
    return result

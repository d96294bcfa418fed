"""Score a decoder's reconstruction of a real clip: the teacher's encoder makes the latents, the
decoder decodes them, metrics compare the decode with the clip (and, for a student, with the
teacher's own decode of the same latents)."""

from __future__ import annotations

import logging

import torch

from lab.data.samples import resolve_clip
from lab.data.video import load_clip, probe
from lab.errors import LabError
from lab.models import load_for_decoding
from lab.models.interface import VideoDecoder
from lab.models.pairing import latents_encoder
from lab.progress import Progress
from lab.runtime.spec import fixed_spec

log = logging.getLogger("lab")

#: metric name (as in --metrics and the JSON keys) -> whether it needs downloaded backbone weights
METRICS = {"psnr": False, "ssim": False, "vmaf": False, "temporal": False,
           "lpips": True, "fid": True, "video_fid": True}
DEFAULT_METRICS = ("psnr", "ssim", "vmaf", "temporal")
#: metric name -> how tables and reports head its column: the unit and which way is better, so a reader
#: never has to guess (temporal is an error: lower is better; VMAF is lab.eval.vmaf's, at the viewing size).
METRIC_LABELS = {"psnr": "PSNR dB (higher better)", "ssim": "SSIM (higher better)",
                 "vmaf": "VMAF (higher better)", "temporal": "temporal error (lower better)",
                 "lpips": "LPIPS (lower better)", "fid": "FID (lower better)", "video_fid": "video FID (lower better)"}


def metric_label(name: str) -> str:
    return METRIC_LABELS.get(name, name)


def retention(student_psnr: float, teacher_psnr: float) -> dict:
    """Retention as the lab reports it: the ratio of PSNRs (against the real clip) and, beside it, the drop in
    dB, which is what a reader compares (a ratio of 0.93 at 18 dB is a 1.3 dB drop)."""
    return {"retention": student_psnr / teacher_psnr, "psnr_drop_db": teacher_psnr - student_psnr}


def retention_text(r: dict) -> str:
    """'0.9300 (1.26 dB below the teacher)' for a row holding ``retention`` and ``psnr_drop_db``."""
    drop = r["psnr_drop_db"]
    where = f"{drop:.2f} dB below" if drop >= 0 else f"{-drop:.2f} dB above"
    return f"{r['retention']:.4f} ({where} the teacher)"


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

    def score(self, x: torch.Tensor, y: torch.Tensor, t: int | None = None) -> dict:
        """Every metric of decode ``x`` against reference ``y`` (whole clips); with psnr and ``t`` (the VAE's
        temporal compression) also ``psnr_by_latent_frame``, which shows a decode that drifts along the clip."""
        x, y = x.detach().float().cpu(), y.detach().float().cpu()
        result = {}
        if "psnr" in self.names and t is not None:
            from lab.eval.metrics import psnr_by_latent_frame  # deferred: as in accumulators
            result["psnr_by_latent_frame"] = psnr_by_latent_frame(x, y, t)
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
    return load_for_decoding(name, weights=weights, device=device, dtype=dtype)


def evaluate(decoder: str | VideoDecoder, video: str, *, teacher: str | VideoDecoder | None = None,
             weights: str | None = None, teacher_weights: str | None = None, frames: int = 17,
             size: tuple[int, int] | None = None, metrics: list[str] | None = None,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> dict:
    """Score ``decoder`` (a registered name, a saved folder or a VideoDecoder; ``weights`` for a name; a name
    without a runtime decodes under the default one, lab.models.load_for_decoding, while a teacher loaded here as
    the reference runs eagerly) on the real clip ``video`` (a sample name such as ``carphone``, or a path):
    ``teacher`` encodes the clip's first ``frames`` frames (cut to a count the VAE takes; resized and center-cropped to
    ``size`` (H, W) when given, else cropped to the VAE's grid), the decoder decodes those latents,
    and ``metrics`` (default psnr, ssim, vmaf, temporal; ``METRICS`` lists them all) compare the
    decode with the clip. ``teacher`` defaults to the decoder itself for a teacher VAE, else to the
    teacher the decoder records. Returns a dict of the metrics against the clip; for a student also
    ``teacher_vs_clip`` and ``vs_teacher`` (the same metrics for the teacher's decode, and of the
    student against it) and, with psnr, the retention and the PSNR drop in dB (``retention``). With psnr, each
    comparison also holds ``psnr_by_latent_frame`` (lab.eval.metrics.psnr_by_latent_frame)."""
    names = list(metrics or DEFAULT_METRICS)
    dec = _load(decoder, weights, device, dtype)
    tea = latents_encoder(dec, teacher, spec=decoder if isinstance(decoder, str) else None, weights=weights,
                          teacher_weights=teacher_weights, device=device, dtype=dtype)
    path = resolve_clip(video)
    g = tea.geometry
    clip = load_clip(path, frames=frames, size=size, frame_multiple=g.t, spatial_multiple=g.spatial)
    fps = probe(path)["fps"] or 24.0
    ms = MetricSet(names, fps=fps).prepare()
    log.info("eval: %s on %s, clip %s, latents from %s", dec.name, path.name, tuple(clip.shape), tea.name)
    # encode, decode, score; and for a student the teacher's decode and two more scorings
    with Progress("eval", 3 if tea is dec else 6, unit="stage") as bar:
        z = tea.encode(clip.to(device=device, dtype=dtype))
        bar.update(note="encoded")
        recon = dec.decode(z)
        bar.update(note="decoded")
        # the name with its runtime (mini-wan-flash@fused): which path made the decode
        result = {"decoder": fixed_spec(dec.name, dec), "teacher": tea.name, "clip": str(path), "video_shape": list(clip.shape),
                  "latents_shape": list(z.shape), "metrics": names, **ms.score(recon, clip, g.t)}
        bar.update(note="scored vs the clip")
        if tea is not dec:
            teacher_recon = tea.decode(z)
            bar.update(note="teacher decoded")
            result["teacher_vs_clip"] = ms.score(teacher_recon, clip, g.t)
            bar.update(note="teacher scored")
            result["vs_teacher"] = ms.score(recon, teacher_recon, g.t)
            bar.update(note="scored vs the teacher")
            if "psnr" in names:
                result.update(retention(result["psnr"], result["teacher_vs_clip"]["psnr"]))
    if "vmaf" in names:
        from lab.eval.vmaf import vmaf_note  # deferred: with the accumulators above
        result["vmaf_note"] = vmaf_note([result["vmaf"], result.get("teacher_vs_clip", {}).get("vmaf")])
    return result

"""Held-out reconstruction figures: PSNR and SSIM of encode -> decode on clips training never saw."""

from __future__ import annotations

import torch

from pathlib import Path

from lab.data.heldout import HELDOUT, load_heldout
from lab.eval.metrics import psnr, ssim
from lab.runs.store import RunReader, is_run
from lab.teachers.config import Preset

#: the run-store scalars of the held-out evaluations during training (TeacherTask.evaluate)
PREFIX = "heldout/"


@torch.no_grad()
def reconstruct(vae, video: torch.Tensor) -> torch.Tensor:
    """encode (posterior mean) -> decode, clamped to [-1, 1], in the model's device and dtype."""
    p = next(vae.parameters())
    z = vae.encode(video.to(p.device, p.dtype)).latent_dist.mode()
    return vae.decode(z).sample.float().clamp(-1, 1).cpu()


def evaluate(vae, preset: Preset, frames: int = 9) -> dict:
    """{clip: {psnr, ssim, frames, size}} on every held-out clip."""
    was_training = vae.training
    vae.eval()
    out = {}
    try:
        for clip in HELDOUT:
            video = load_heldout(clip, frames, preset)
            rec = reconstruct(vae, video)
            out[clip.name] = {"psnr": round(psnr(rec, video), 3), "ssim": round(ssim(rec, video), 4),
                              "frames": int(video.shape[2]), "size": [int(video.shape[3]), int(video.shape[4])]}
    finally:
        vae.train(was_training)
    return out


def curve_metrics(scores: dict, train_minutes: float) -> dict:
    """The run-store scalars of one held-out evaluation during training: ``heldout/CLIP/psnr`` and ``/ssim`` per
    clip, their mean PSNR (``heldout/psnr``) and the training minutes it came after."""
    out = {f"{PREFIX}train_minutes": round(train_minutes, 3)}
    for clip, m in scores.items():
        out[f"{PREFIX}{clip}/psnr"], out[f"{PREFIX}{clip}/ssim"] = m["psnr"], m["ssim"]
    out[f"{PREFIX}psnr"] = round(sum(m["psnr"] for m in scores.values()) / len(scores), 3)
    return out


def learning_curve(run_dir: Path) -> list[dict]:
    """The held-out evaluations a teacher run logged (``--eval-every``), in step order: [{step, minutes,
    clips: {clip: {psnr, ssim}}}]; [] for a run without them (or without a run store)."""
    if not is_run(Path(run_dir)):
        return []
    with RunReader(Path(run_dir)) as reader:
        series = {k: v for k, v in reader.scalars().items() if k.startswith(PREFIX)}
    points: dict[int, dict] = {}
    for key, values in series.items():
        name = key[len(PREFIX):]
        for step, value in values:
            point = points.setdefault(step, {"step": step, "minutes": None, "clips": {}})
            if name == "train_minutes":
                point["minutes"] = value
            elif "/" in name:
                clip, metric = name.rsplit("/", 1)
                point["clips"].setdefault(clip, {})[metric] = value
    order = {clip.name: i for i, clip in enumerate(HELDOUT)}  # the held-out table's order
    for point in points.values():
        point["clips"] = dict(sorted(point["clips"].items(), key=lambda kv: order.get(kv[0], len(order))))
    return [points[s] for s in sorted(points) if points[s]["clips"]]

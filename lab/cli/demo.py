"""python -m lab demo: the main job on the embedded default (no weight downloads, no GPU)."""

import logging
import time
from pathlib import Path

import torch

from lab.data.samples import bundled_clip
from lab.data.video import load_clip, side_by_side, write_video
from lab.errors import WeightsNotFoundError
from lab.models import load_decoder

HELP = "run the lab's main job on the embedded default (bundled clip, mini teacher) and report"
log = logging.getLogger("lab")


def add_arguments(p):
    p.add_argument("--out", default="runs/demo", help="where to write the outputs (default runs/demo)")
    p.add_argument("--teacher", default="mini-wan", help="teacher to start from (default mini-wan)")


def run(args):
    torch.manual_seed(0)
    out = Path(args.out)
    try:
        teacher = load_decoder(args.teacher)
        trained = True
    except WeightsNotFoundError as exc:
        log.warning("%s\nfalling back to the untrained architecture (random weights)", exc)
        teacher = load_decoder(args.teacher, weights="random")
        trained = False
    g = teacher.geometry
    clip = load_clip(bundled_clip(), frames=17, frame_multiple=g.t, spatial_multiple=g.spatial)
    t0 = time.perf_counter()
    z = teacher.encode(clip)
    t_enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    recon = teacher.decode(z)
    t_dec = time.perf_counter() - t0
    mse = torch.mean((recon.float() - clip.float()) ** 2).item()
    psnr = 10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))).item()
    video = write_video(out / "real_vs_teacher.mp4", side_by_side(clip, recon), fps=12)
    log.info("wrote %s", video)
    return {"teacher": teacher.name, "trained_weights": trained, "clip": str(bundled_clip()),
            "video_shape": list(clip.shape), "latents_shape": list(z.shape), "psnr_db": psnr,
            "encode_seconds": t_enc, "decode_seconds": t_dec, "side_by_side": str(video)}

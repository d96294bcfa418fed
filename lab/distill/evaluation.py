"""Validation during distillation: the student's (or its EMA's) decode of each held-out clip's latents
against the real clip and against the teacher's decode, and the side-by-side samples the dashboard shows."""

from __future__ import annotations

from pathlib import Path

import torch

from lab.data.video import side_by_side, write_video
from lab.eval.evaluate import retention
from lab.eval.metrics import psnr, ssim


@torch.no_grad()
def validation_metrics(model, val: list, autocast, vmaf: bool = False) -> dict:
    """Mean over the validation clips of PSNR/SSIM against the real clip and the teacher's decode, the
    teacher's own PSNR, the retention (student PSNR / teacher PSNR) and beside it the PSNR drop in dB
    (lab.eval.evaluate.retention); {} without clips."""
    was_training = model.training
    model.eval()
    rows = []
    for v in val:
        with autocast:
            out = model.decode(v.latents).float()
        row = {"val/psnr": psnr(out, v.real.float()), "val/ssim": ssim(out, v.real.float()),
               "val/psnr_vs_teacher": psnr(out, v.teacher.float()),
               "val/ssim_vs_teacher": ssim(out, v.teacher.float()),
               "val/teacher_psnr": psnr(v.teacher.float(), v.real.float())}
        kept = retention(row["val/psnr"], row["val/teacher_psnr"])
        row["val/retention"], row["val/psnr_drop_db"] = kept["retention"], kept["psnr_drop_db"]
        if vmaf:
            from lab.eval.vmaf import vmaf as vmaf_score  # deferred: it probes for the ffmpeg/libvmaf tools
            row["val/vmaf"] = vmaf_score(out, v.real.float())
        rows.append(row)
    model.train(was_training)
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]} if rows else {}


@torch.no_grad()
def write_triptych(path: Path, model, clip) -> Path:
    """real | teacher | student of one validation clip, as an mp4 at ``path``."""
    return write_video(path, side_by_side(clip.real, clip.teacher, model.decode(clip.latents)))

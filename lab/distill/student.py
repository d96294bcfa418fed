"""What trains in a distillation run: the student (a saved folder, or built from the teacher by the
prune + operator-swap recipe) and the projection heads that align its stage outputs with the
teacher's, wrapped as one module (what DDP wraps)."""

from __future__ import annotations

import torch
from torch import nn

from lab.distill.config import DistillConfig
from lab.distill.features import FeatureAligner, StageTaps
from lab.models import load_decoder
from lab.ops.plan import parse_plan_text
from lab.prune import FLASH_VAED, parse_keep, prune


class StudentModule(nn.Module):
    """The student plus the projection heads, as one module (what DDP wraps). ``forward`` decodes the
    latents and returns the video and the aligned (student, teacher) stage pairs."""

    def __init__(self, student, aligner: FeatureAligner):
        super().__init__()
        self.student, self.aligner = student, aligner
        self.taps = StageTaps(student, aligner.stages) if aligner.stages else None

    def forward(self, z, teacher_feats: dict | None = None):
        if self.taps is not None:
            self.taps.collect()  # drop anything recorded outside training (e.g. a validation decode)
        video = self.student.decode_with_grad(z)
        pairs = {}
        if self.taps is not None:
            feats = self.taps.collect()
            if teacher_feats is not None:
                pairs = {s: self.aligner.pair(s, feats[s], teacher_feats[s]) for s in self.aligner.stages}
        return video, pairs


def build_student(cfg: DistillConfig, teacher):
    """A saved student folder, or the recipe (prune + operator swap, as `python -m lab prune` does)."""
    sc = cfg.student
    if sc.folder:
        return load_decoder(sc.folder, weights=sc.weights, device=teacher.device)
    keep, operators = sc.keep, sc.operators
    if keep == FLASH_VAED:  # the teacher family's widths and operator plan (lab.arch)
        operators = operators or FLASH_VAED
    elif isinstance(keep, str):
        keep = parse_keep(keep)
    if isinstance(operators, str) and "=" in operators:
        operators = parse_plan_text(operators)
    s = cfg.student.calibration_size
    student, _ = prune(teacher, keep, sc.criterion, clips=list(sc.calibration_clips), frames=sc.calibration_frames,
                       size=(s, s), operators=operators, name="student", seed=cfg.seed, refine=sc.refine)
    return student


def stage_widths(decoder, stages: list[str], z: torch.Tensor) -> dict[str, int]:
    """Channel count of each stage's output, measured with one small decode."""
    if not stages:
        return {}
    taps = StageTaps(decoder, stages)
    try:
        with torch.no_grad():
            decoder.decode(z)
        return {s: int(t.shape[1]) for s, t in taps.collect().items()}
    finally:
        taps.remove()

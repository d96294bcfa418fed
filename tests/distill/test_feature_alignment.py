"""Feature alignment of pruned students: at every comparable stage the aligner compares the student's
map with the teacher channels the student kept (Wan and LTX-Video teachers alike), so the maps pair up
channel for channel without a learned projection."""

import math
from pathlib import Path

import pytest
import torch

from lab.distill import load_config
from lab.distill.features import FeatureAligner, StageTaps, comparable_stages, kept_channels
from lab.distill.trainer import DistillTask
from lab.models import load_decoder
from lab.prune import prune
from lab.runs.store import RunReader
from lab.runtime.fused import set_fused
from lab.training.loop import fit


def _maps(decoder, stages, z):
    taps = StageTaps(decoder, stages)
    try:
        decoder.decode(z)
        return taps.collect()
    finally:
        taps.remove()


@pytest.mark.parametrize("name, shape", [("wan2.1-tiny", (1, 16, 3, 4, 4)), ("ltx-video-tiny", (1, 128, 2, 2, 2))])
def test_pruned_students_pair_with_the_teacher_channels_they_kept(name, shape):
    teacher = load_decoder(name)
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    student, _ = prune(teacher, 0.5, "independence", latents=[z])
    stages = comparable_stages(teacher, student)
    t_maps, s_maps = _maps(teacher, stages, z), _maps(student, stages, z)
    tw = {s: m.shape[1] for s, m in t_maps.items()}
    sw = {s: m.shape[1] for s, m in s_maps.items()}
    narrowed = [s for s in stages if sw[s] < tw[s]]
    assert narrowed, (sw, tw)
    aligner = FeatureAligner(student, stages, sw, tw)
    assert set(aligner.kept) == set(narrowed) and not aligner.heads
    for s in narrowed:
        idx = kept_channels(student, s)
        assert len(set(idx)) == sw[s] and max(idx) < tw[s]
    for s in stages:
        a, b = aligner.pair(s, s_maps[s], t_maps[s])
        assert a.shape == b.shape


@pytest.mark.parametrize("name, shape", [("wan2.1-tiny", (1, 16, 3, 4, 4)), ("ltx-video-tiny", (1, 128, 2, 2, 2))])
def test_stage_taps_see_the_same_maps_on_the_fused_teacher(name, shape):
    # Distillation decodes its frozen teacher on the fused runtime (the CPU default); the taps hook stage
    # modules, which must still run and return the eager maps, every Wan causal chunk included.
    teacher = load_decoder(name)
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    stages = comparable_stages(teacher, teacher)
    eager = _maps(teacher, stages, z)
    fused = _maps(set_fused(teacher, True), stages, z)
    assert set(fused) == set(eager) == set(stages)
    for s in stages:
        assert fused[s].shape == eager[s].shape
        torch.testing.assert_close(fused[s], eager[s], rtol=1e-4, atol=1e-5)


def test_a_distillation_run_decodes_its_teacher_fused_on_the_cpu(tmp_path, sample_clips):
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml")
    cfg.phases = cfg.phases[:1]
    cfg.phases[0].max_steps = 1
    cfg.eval_every, cfg.checkpoint_every, cfg.sample_every = 100, 0, 0
    task = DistillTask(cfg, tmp_path / "run")
    fit(task, tmp_path / "run")
    assert task.teacher.fused is not None           # built the student from the eager teacher, then fused it
    with RunReader(tmp_path / "run") as r:
        assert math.isfinite(r.scalars()["train/feature"][-1][1])

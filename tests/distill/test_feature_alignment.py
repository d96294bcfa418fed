"""Feature alignment of pruned students: at every comparable stage the aligner compares the student's
map with the teacher channels the student kept (Wan and LTX-Video teachers alike), so the maps pair up
channel for channel without a learned projection."""

import pytest
import torch

from lab.distill.features import FeatureAligner, StageTaps, comparable_stages, kept_channels
from lab.models import load_decoder
from lab.prune import prune


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

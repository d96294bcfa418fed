"""VMAF through imageio-ffmpeg's libvmaf on real clips."""

import pytest
import torch
import torch.nn.functional as F

from lab.data.video import load_clip
from lab.eval.vmaf import VIEWING_HEIGHT, VMAF, vmaf, vmaf_caveat


def _blur(video: torch.Tensor) -> torch.Tensor:
    n, c, t, h, w = video.shape
    f = video.permute(0, 2, 1, 3, 4).reshape(-1, c, h, w)
    f = F.interpolate(F.interpolate(f, scale_factor=0.25, mode="bilinear", antialias=True), size=(h, w),
                      mode="bilinear")
    return f.reshape(n, t, c, h, w).permute(0, 2, 1, 3, 4)


def test_vmaf_self_high_blurred_lower(bundled_clip_path):
    clip = load_clip(bundled_clip_path, frames=17)
    same = vmaf(clip, clip)
    blurred = vmaf(_blur(clip), clip)
    assert same > 95
    assert blurred < same - 20


def test_vmaf_streaming_equals_whole(bundled_clip_path):
    clip = load_clip(bundled_clip_path, frames=9)
    noisy = (clip + 0.05 * torch.randn_like(clip)).clamp(-1, 1)
    acc = VMAF()
    try:
        for t0, t1 in ((0, 1), (1, 5), (5, 9)):
            acc.update(noisy[:, :, t0:t1], clip[:, :, t0:t1])
        assert acc.compute() == pytest.approx(vmaf(noisy, clip), abs=1e-6)
    finally:
        acc.close()


def test_vmaf_real_distorted_pair(sample_clips):
    ref = load_clip(sample_clips["carphone"], frames=9, size=(144, 176))
    dist = load_clip(sample_clips["carphone_distorted"], frames=9, size=(144, 176))
    # the distorted twin is a 7 KB encode: seen full screen at 1080 lines it is far below its source
    assert 0 <= vmaf(dist, ref) < vmaf(ref, ref) - 50


def _score(x, y, **kw) -> float:
    acc = VMAF(threads=1, **kw)
    try:
        return acc.update(x, y).compute()
    finally:
        acc.close()


def test_vmaf_scores_both_videos_at_the_viewing_size_of_its_model(bundled_clip_path):
    clip = load_clip(bundled_clip_path, frames=5, size=(64, 64))
    noisy = (clip + 0.1 * torch.randn_like(clip)).clamp(-1, 1)
    viewed = vmaf(noisy, clip)
    assert viewed == pytest.approx(_score(noisy, clip, height=VIEWING_HEIGHT), abs=1e-6)
    # at its native 64x64 the same pair scores something else entirely (the model was not fitted to it)
    assert abs(_score(noisy, clip, height=64) - viewed) > 10


def test_the_caveat_when_vmaf_cannot_rank():
    assert vmaf_caveat([0.0, 1.4, None]).startswith("VMAF against the real clip is at most 1.4 here")
    assert vmaf_caveat([0.0, 35.0]) is None and vmaf_caveat([None]) is None


def test_the_decoder_table_says_how_vmaf_was_scored(sample_clips):
    from lab.eval.table import decoder_table, render_markdown

    result = decoder_table(["wan2.1-tiny"], teacher="wan2.1-tiny", clips=["carphone"], frames=5, repeats=1,
                           warmup=0, vmaf=True)
    score = result["rows"][0]["clips"]["carphone"]["vmaf"]
    assert score is not None and 0 <= score < 20  # random weights: far from the clip at the viewing size
    note = result["vmaf_note"]
    assert "upscaled to 1080 lines" in note and "cannot rank them" in note
    assert note in render_markdown(result)

"""VMAF through imageio-ffmpeg's libvmaf on real clips."""

import pytest
import torch
import torch.nn.functional as F

from lab.data.video import load_clip
from lab.eval.vmaf import VMAF, vmaf


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
    score = vmaf(dist, ref)
    assert 5 < score < vmaf(ref, ref) - 5

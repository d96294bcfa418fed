"""PSNR, SSIM and the frame-difference error against hand-computed and scikit-image references,
and streaming (chunk by chunk) against whole-clip calls."""

import math

import numpy as np
import pytest
import torch

from lab.data.video import load_clip
from lab.eval.metrics import PSNR, SSIM, TemporalConsistency, psnr, psnr_by_latent_frame, ssim, temporal_consistency


@pytest.fixture(scope="module")
def clip(bundled_clip_path):
    return load_clip(bundled_clip_path, frames=9, size=(64, 64))


def test_psnr_hand_computed():
    x = torch.zeros(1, 3, 2, 4, 4)
    y = x.clone()
    y[0, 0, 0, 0, 0] = 0.5  # one error of 0.5 among 96 values: MSE = 0.25 / 96, peak-to-peak 2
    assert psnr(x, y) == pytest.approx(10 * math.log10(4 / (0.25 / 96)), abs=1e-9)
    assert psnr(x, x) == float("inf")
    # Equal to PSNR of the [0, 255] frames.
    a, b = (x + 1) * 127.5, (y + 1) * 127.5
    assert psnr(x, y) == pytest.approx(10 * math.log10(255 ** 2 / torch.mean((a - b) ** 2).item()), abs=1e-6)


@pytest.mark.parametrize("noise", [0.02, 0.2])
def test_ssim_matches_skimage(clip, noise):
    from skimage.metrics import structural_similarity
    y = (clip + noise * torch.randn_like(clip)).clamp(-1, 1)
    for scale, data_range in ((255.0, 255), (1.0, 1)):
        a = ((clip[0] + 1) / 2 * scale).permute(1, 2, 3, 0).double().numpy()
        b = ((y[0] + 1) / 2 * scale).permute(1, 2, 3, 0).double().numpy()
        ref = np.mean([structural_similarity(a[t], b[t], gaussian_weights=True, sigma=1.5,
                                             use_sample_covariance=False, data_range=data_range, channel_axis=-1)
                       for t in range(a.shape[0])])
        assert ssim(y, clip) == pytest.approx(ref, abs=1e-6)
    assert ssim(clip, clip) == pytest.approx(1.0, abs=1e-9)


def test_ssim_decreases_with_noise(clip):
    scores = [ssim((clip + s * torch.randn_like(clip)).clamp(-1, 1), clip) for s in (0.01, 0.05, 0.2)]
    assert scores[0] > scores[1] > scores[2]


def test_temporal_consistency():
    x = torch.rand(1, 3, 6, 16, 16) * 2 - 1
    assert temporal_consistency(x, x) == 0.0
    # A constant offset moves with the reference: no temporal error.
    assert temporal_consistency(x + 0.1, x) == pytest.approx(0.0, abs=1e-4)  # float32 rounding only
    # Flicker: alternate frames brightened by 0.1 -> every difference is off by 0.1 ([0,255]: 12.75).
    flicker = x.clone()
    flicker[:, :, 1::2] += 0.1
    assert temporal_consistency(flicker, x) == pytest.approx(12.75, rel=1e-6)


@pytest.mark.parametrize("cls,fn", [(PSNR, psnr), (SSIM, ssim), (TemporalConsistency, temporal_consistency)])
def test_streaming_equals_batched(clip, cls, fn):
    y = (clip + 0.1 * torch.randn_like(clip)).clamp(-1, 1)
    y2 = torch.cat([y, y.flip(2)])  # a batch of two clips
    x2 = torch.cat([clip, clip])
    acc = cls()
    for t0, t1 in ((0, 1), (1, 5), (5, 9)):  # chunks as a causal decoder yields them
        acc.update(y2[:, :, t0:t1], x2[:, :, t0:t1])
    assert acc.compute() == pytest.approx(fn(y2, x2), rel=1e-10)


def test_shape_errors_name_the_problem():
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(torch.zeros(1, 3, 2, 16, 16), torch.zeros(1, 3, 3, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 3, T, H, W\)"):
        ssim(torch.zeros(3, 2, 16, 16), torch.zeros(3, 2, 16, 16))
    with pytest.raises(ValueError, match="smaller than the 11-pixel window"):
        ssim(torch.zeros(1, 3, 2, 8, 8), torch.zeros(1, 3, 2, 8, 8))


def test_psnr_by_latent_frame_groups_the_frames_each_latent_frame_decodes():
    torch.manual_seed(0)
    y = torch.rand(1, 3, 9, 8, 8) * 2 - 1
    x = y.clone()
    x[:, :, 5:9] += 0.1  # only latent frame 2 of a t=4 VAE (frames 5-8) is off
    curve = psnr_by_latent_frame(x, y, 4)
    assert len(curve) == 3 and curve[:2] == [float("inf")] * 2
    assert curve[2] == pytest.approx(psnr(x[:, :, 5:], y[:, :, 5:])) == pytest.approx(10 * math.log10(4 / 0.01))
    assert len(psnr_by_latent_frame(x, y, 8)) == 2  # LTX: frame 0, then frames 1-8
    with pytest.raises(ValueError, match="not 1 \\+ 4k"):
        psnr_by_latent_frame(x[:, :, :8], y[:, :, :8], 4)

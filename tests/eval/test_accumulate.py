"""MeanAccumulator, the running mean every chunked metric shares: chunked equals whole, empty
accumulators name their metric, and the metrics built on it keep their numbers."""

import pytest
import torch

from lab.eval.accumulate import MeanAccumulator
from lab.eval.metrics import PSNR, SSIM, TemporalConsistency, psnr, ssim, temporal_consistency
from lab.eval.perceptual import LPIPS


def test_chunked_mean_equals_whole():
    v = torch.rand(1000, dtype=torch.float32)
    acc = MeanAccumulator()
    for chunk in v.split(137):
        acc.add(chunk)
    assert acc.count == 1000 and acc.compute() == pytest.approx(v.double().mean().item(), rel=1e-12)


@pytest.mark.parametrize("cls, message", [(PSNR, "psnr: nothing was fed"), (SSIM, "ssim: nothing was fed"),
                                          (TemporalConsistency, "temporal consistency: needs at least 2 frames")])
def test_empty_accumulators_name_the_metric(cls, message):
    assert issubclass(cls, MeanAccumulator)
    with pytest.raises(ValueError, match=message):
        cls().compute()


def test_metrics_streamed_equal_whole_clip():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 7, 24, 24) * 2 - 1
    y = (x + 0.1 * torch.randn_like(x)).clamp(-1, 1)
    for acc, whole in ((PSNR(), psnr(x, y)), (SSIM(), ssim(x, y)), (TemporalConsistency(), temporal_consistency(x, y))):
        for t0 in range(0, 7, 3):
            acc.update(x[:, :, t0:t0 + 3], y[:, :, t0:t0 + 3])
        assert acc.compute() == pytest.approx(whole, rel=1e-12), type(acc).__name__


def test_lpips_is_a_mean_accumulator():
    # A stand-in network returning per-frame distances: LPIPS averages them over frames.
    class MeanAbs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))

        def forward(self, a, b):
            return (a - b).abs().mean(dim=(1, 2, 3)) * self.w

    x = torch.zeros(1, 3, 5, 8, 8)
    y = torch.linspace(0, 1, 5).view(1, 1, 5, 1, 1).expand(1, 3, 5, 8, 8)
    acc = LPIPS(MeanAbs(), batch=2)
    assert isinstance(acc, MeanAccumulator)
    assert acc.update(x, y).compute() == pytest.approx(0.5) and acc.count == 5
    with pytest.raises(ValueError, match="lpips: nothing was fed"):
        LPIPS(MeanAbs()).compute()

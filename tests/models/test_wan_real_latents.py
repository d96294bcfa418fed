"""The full-size Wan 2.1 architecture (random weights) on real Wan 2.1 latents from ../shared."""

import pytest
import torch

from lab.data.latents import load_latents
from lab.models import load_decoder

pytestmark = [pytest.mark.slow, pytest.mark.shared]


@pytest.fixture(scope="module")
def real_latents(shared_assets):
    z = load_latents(shared_assets / "latents" / "wan2_1_cheesecake_latents.pth")
    assert z.shape == (1, 16, 16, 40, 64) and z.dtype == torch.bfloat16
    return z.float()


@pytest.fixture(scope="module")
def wan_full():
    return load_decoder("wan2.1", weights="random")


def test_all_frames_decode_to_61_frames_and_stay_causal(wan_full, real_latents):
    # All 16 latent frames through the full-size architecture. A central 8x8-latent window keeps
    # this CPU test to seconds; the next test covers the full 320x512 layout.
    z = real_latents[:, :, :, 16:24, 28:36].contiguous()
    a = wan_full.decode(z)
    assert a.shape == (1, 3, 61, 64, 64)
    t = 10
    z2 = z.clone()
    z2[:, :, t] = -z2[:, :, t]
    b = wan_full.decode(z2)
    cut = 1 + 4 * (t - 1)
    assert torch.equal(a[:, :, :cut], b[:, :, :cut])
    assert not torch.equal(a[:, :, cut:], b[:, :, cut:])


def test_full_resolution_layout(wan_full, real_latents):
    chunks = list(wan_full.decode_stream(real_latents[:, :, :2].contiguous()))
    assert [c.shape for c in chunks] == [(1, 3, 1, 320, 512), (1, 3, 4, 320, 512)]

import pytest
import torch

from lab.errors import LatentShapeError, VideoShapeError


def test_wan_decode_shapes_and_range(tiny_wan):
    z = torch.randn(2, 16, 3, 4, 6)
    v = tiny_wan.decode(z)
    assert v.shape == (2, 3, 9, 32, 48)
    assert v.min() >= -1 and v.max() <= 1


def test_ltx_decode_shapes(tiny_ltx):
    v = tiny_ltx.decode(torch.randn(1, 128, 3, 2, 3))
    assert v.shape == (1, 3, 17, 64, 96)


def test_wan_stream_equals_whole_clip(tiny_wan):
    z = torch.randn(1, 16, 4, 4, 4)
    whole = tiny_wan.decode(z)
    chunks = list(tiny_wan.decode_stream(z))
    assert [c.shape[2] for c in chunks] == [1, 4, 4, 4]
    assert torch.equal(torch.cat(chunks, 2), whole)


def test_wan_is_causal(tiny_wan):
    z = torch.randn(1, 16, 4, 3, 3)
    a = tiny_wan.decode(z)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    b = tiny_wan.decode(z2)
    first_affected = 1 + 4 * (2 - 1)
    assert torch.equal(a[:, :, :first_affected], b[:, :, :first_affected])
    assert not torch.equal(a[:, :, first_affected:], b[:, :, first_affected:])


def test_normalization_round_trip(tiny_wan, tiny_ltx):
    for dec in (tiny_wan, tiny_ltx):
        z = torch.randn(1, dec.geometry.channels, 2, 2, 2)
        assert torch.allclose(dec.normalize(dec.denormalize(z)), z, atol=1e-5)


def test_wan_uses_config_latent_stats():
    from lab.models import load_decoder
    dec = load_decoder("wan2.1-tiny")
    # Wan 2.1's published per-channel statistics: raw = z * std + mean
    assert dec.latents_std.flatten()[0].item() == pytest.approx(2.8184)
    assert dec.latents_mean.flatten()[0].item() == pytest.approx(-0.7571)


def test_encode_decode_round_trip_shapes(tiny_wan, bundled_clip_path):
    from lab.data.video import load_clip
    clip = load_clip(bundled_clip_path, frames=9)
    z = tiny_wan.encode(clip)
    assert z.shape == (1, 16, 3, 16, 16)
    assert tiny_wan.decode(z).shape == clip.shape


@pytest.mark.parametrize("z, match", [
    (torch.randn(1, 16, 4, 4), "add a time axis"),
    (torch.randn(1, 8, 2, 4, 4), "16-channel latents, got 8 channels"),
    (torch.randn(1, 2, 16, 4, 4), "N,T,C,H,W"),
    (torch.randn(1, 128, 2, 4, 4), "another VAE's latents"),
    (torch.randn(1, 16, 2, 4, 4, dtype=torch.float64), "cast one of them"),
    (torch.zeros(1, 16, 2, 4, 4, dtype=torch.long), "floating point"),
    (torch.full((1, 16, 2, 4, 4), float("nan")), "NaN"),
    (torch.randn(1, 16, 0, 4, 4), "empty axis"),
    ([[1.0]], "torch.Tensor"),
])
def test_bad_latents_have_clear_errors(tiny_wan, z, match):
    with pytest.raises(LatentShapeError, match=match):
        tiny_wan.decode(z)


def test_device_mismatch_is_explained(tiny_wan):
    z = torch.randn(1, 16, 1, 2, 2, device="meta")
    with pytest.raises(LatentShapeError, match="move one of them"):
        tiny_wan.decode(z)


@pytest.mark.parametrize("shape, match", [
    ((1, 3, 10, 64, 64), "1 \\+ 4k frames"),
    ((1, 3, 9, 60, 64), "multiples of 8"),
    ((1, 4, 9, 64, 64), "RGB video"),
])
def test_bad_videos_have_clear_errors(tiny_wan, shape, match):
    with pytest.raises(VideoShapeError, match=match):
        tiny_wan.encode(torch.zeros(shape))


def test_ltx_cannot_stream(tiny_ltx):
    from lab.errors import LabError
    with pytest.raises(LabError, match="not a causal decoder"):
        tiny_ltx.stream()


def test_push_takes_one_frame(tiny_wan):
    s = tiny_wan.stream()
    with pytest.raises(LatentShapeError, match="one latent frame"):
        s.push(torch.randn(1, 16, 2, 2, 2))

"""Sub-pixel resample convs (lab.runtime.fused.subpixel, ``NAME@fused+subpixel``): "nearest 2x upsample + 3x3
conv" as one transposed conv on the low-resolution frames, against diffusers' WanResample and the eager decode."""

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample
from torch import nn

from lab.errors import LabError
from lab.runtime.fused import set_fused
from lab.runtime.fused.ops import interleave
from lab.runtime.fused.subpixel import SubpixelConvs, is_subpixel_conv, subpixel_weight, upsample_conv_reference
from lab.runtime.spec import Runtime, fixed_spec, runtime_note, split_runtime
from lab.runtime.timing import video_error

from fused_checks import assert_fused_matches_eager, fused_error_in_bf16  # tests/runtime/fused_checks.py

CL = torch.channels_last


@pytest.mark.parametrize("shape", [(8, 4, 5, 7), (3, 6, 1, 1), (16, 24, 6, 2)])
@pytest.mark.parametrize("layout", [torch.contiguous_format, CL])
def test_subpixel_conv_is_upsample_then_conv(shape, layout):
    cin, cout, h, w = shape
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    x = torch.randn(2, cin, h, w, generator=g).contiguous(memory_format=layout)
    ref = upsample_conv_reference(x, conv)
    out = SubpixelConvs()(x, conv)
    assert out.shape == ref.shape == (2, cout, 2 * h, 2 * w)
    # the same sums in another order: float32 agrees to a rounding
    assert (out - ref).abs().max() <= 1e-6 * ref.abs().max() * 8


def test_subpixel_weight_sums_each_3x3_tap_into_the_phases_it_serves():
    w = torch.randn(5, 3, 3, 3, dtype=torch.float64)
    wt = subpixel_weight(w)
    assert wt.shape == (3, 5, 4, 4) and wt.dtype == torch.float64
    # every 3x3 tap lands in exactly 2 of the 4 phases along each axis: the 4x4 kernel sums to 4x the 3x3 one
    assert torch.allclose(wt.sum((2, 3)), 4 * w.sum((2, 3)).T)
    # corner taps: 4x4 tap (0, 0) is 3x3 tap (2, 2) alone (phase (1, 1), low pixel (i + 1, j + 1))
    assert torch.equal(wt[:, :, 0, 0], w[:, :, 2, 2].T) and torch.equal(wt[:, :, 3, 3], w[:, :, 0, 0].T)


def test_subpixel_in_bf16_is_within_a_rounding():
    conv = nn.Conv2d(32, 16, 3, padding=1).to(torch.bfloat16)
    x = torch.randn(1, 32, 9, 11, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    psnr, err = video_error(SubpixelConvs()(x, conv), upsample_conv_reference(x, conv))
    assert psnr >= 40 and err <= 5e-2, (psnr, err)


def test_weights_are_derived_again_when_the_conv_changes():
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 3, 3)
    convs = SubpixelConvs()
    convs(x, conv)
    with torch.no_grad():
        conv.weight.mul_(2)  # in place: the tensor's version moves
    assert (convs(x, conv) - upsample_conv_reference(x, conv)).abs().max() < 1e-5
    conv.to(torch.float64)  # a new tensor of another dtype
    assert convs(x.double(), conv).dtype == torch.float64


@pytest.mark.parametrize("conv", [nn.Conv2d(4, 4, 3, padding=1, stride=2), nn.Conv2d(4, 4, 5, padding=2),
                                  nn.Conv2d(4, 4, 3, padding=1, groups=2), nn.Conv2d(4, 4, 3, padding=1,
                                                                                       padding_mode="reflect")])
def test_only_plain_3x3_convs_fold(conv):
    assert not is_subpixel_conv(conv)
    assert is_subpixel_conv(nn.Conv2d(4, 4, 3, padding=1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_interleave_is_wans_temporal_interleave(dtype):
    y = torch.randn(2, 16, 3, 4, 5).to(dtype).contiguous(memory_format=torch.channels_last_3d)
    b, c2, t, h, w = y.shape
    x = y.reshape(b, 2, c2 // 2, t, h, w)
    x = torch.stack((x[:, 0], x[:, 1]), 3).reshape(b, c2 // 2, t * 2, h, w)  # WanResample's interleave
    ref = x.permute(0, 2, 1, 3, 4).reshape(b * t * 2, c2 // 2, h, w)
    out = interleave(y)
    assert out.is_contiguous(memory_format=CL) and torch.equal(out, ref)
    bias = torch.randn(c2).to(dtype)  # the time conv's, added in the same pass, rounded as ATen's add_ rounds it
    assert torch.equal(interleave(y, bias=bias), interleave(y.clone().add_(bias.view(1, c2, 1, 1, 1))))


# ----- whole decodes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wan_decoders(tiny_wan, wan_flash_half):
    return {"teacher": tiny_wan, "flash": wan_flash_half}


def _resamplers(dec):
    return [m for m in dec.vae.decoder.modules() if isinstance(m, WanResample) and "upsample" in m.mode]


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_subpixel_decode_matches_eager(wan_decoders, which):
    dec = wan_decoders[which]
    assert {m.mode for m in _resamplers(dec)} == {"upsample2d", "upsample3d"}  # both paths run
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(2))

    def installed(dec):
        assert dec.fused.subpixel is not None
    assert_fused_matches_eager(dec, z, check=installed, subpixel=True)


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_subpixel_decode_with_conv_biases_left_to_the_next_kernels(wan_decoders, which):
    """As on CUDA: the time convs run without their biases, which the sub-pixel path's interleave adds."""
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(2))

    def fold(dec):
        dec.fused.fold_conv_bias = True
    assert_fused_matches_eager(wan_decoders[which], z, setup=fold, subpixel=True)


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_subpixel_decode_in_bf16(wan_decoders, which):
    z = torch.randn(1, 16, 4, 4, 6, generator=torch.Generator().manual_seed(3))
    psnr, err = fused_error_in_bf16(wan_decoders[which], z, subpixel=True)
    # the summed taps round once more than eager: about 47-50 dB on these random tiny decoders, below the
    # exact path's 50 dB (why subpixel is a part of its own)
    assert psnr >= 40 and err <= 0.25, (psnr, err)


def test_a_resample_conv_that_does_not_fold_runs_upsample_then_conv(tiny_wan):
    from lab.models import load_decoder
    torch.manual_seed(5)
    dec = load_decoder("wan2.1-tiny")
    up = _resamplers(dec)[0]
    old = up.resample[1]
    up.resample[1] = nn.Conv2d(old.in_channels, old.out_channels, 3, padding=1, padding_mode="replicate")
    z = torch.randn(1, 16, 3, 4, 4)
    ref = dec.decode(z)
    set_fused(dec, subpixel=True)
    assert (dec.decode(z) - ref).abs().max() < 2e-5


def test_subpixel_spec_part():
    from lab.models import load_decoder
    assert split_runtime("wan2.1@fused+subpixel+chunk4") == ("wan2.1", Runtime(chunk=4, fused=True, subpixel=True))
    with pytest.raises(LabError, match="fused\\+subpixel"):
        split_runtime("wan2.1@subpixel")
    dec = load_decoder("wan2.1-tiny@fused+subpixel")
    assert dec.fused.subpixel is not None and fixed_spec("wan2.1-tiny", dec) == "wan2.1-tiny@fused+subpixel"
    assert runtime_note(dec, split_runtime("x@fused+subpixel")[1]) is None
    ltx = load_decoder("ltx-video-tiny@fused+subpixel")
    assert ltx.fused is not None and ltx.fused.subpixel is None
    assert "sub-pixel convs already" in runtime_note(ltx, split_runtime("x@fused+subpixel")[1])

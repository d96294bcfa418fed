"""LTX-2's fused runtime (lab.families.ltx2.fused): its channel RMS norm kernel against diffusers' norm, and the
fused decode of the tiny LTX-2 teacher and its Flash-VAED student (dwsep3d and conv2d operators, reflect
padding) against eager: whole clips, streamed, causal or not, with the conv biases folded or not."""

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLLTX2Video
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import PerChannelRMSNorm

from fused_checks import assert_fused_matches_eager, fused_error_in_bf16
from lab.families.ltx2 import LTX2_TINY_CONFIG, LTX2DecoderAdapter, LTX2RMSNorm
from lab.families.ltx2.fused import _fill_reflect
from lab.models import load_decoder
from lab.prune import prune
from lab.runtime.fused import set_fused
from lab.runtime.fused.norms import norm_act

Z = torch.randn(1, 128, 4, 2, 3, generator=torch.Generator().manual_seed(0))  # -> 25 frames of 64x96


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weighted", [False, True])
def test_channel_norm_kernel_is_the_eager_norm(dtype, weighted):
    """The CPU runs the op's reference: diffusers' PerChannelRMSNorm (and the students' weighted LTX2RMSNorm) op
    for op, so bit for bit in bf16 too, where every step rounds."""
    torch.manual_seed(0)
    norm = LTX2RMSNorm(24) if weighted else PerChannelRMSNorm()
    if weighted:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
    norm = norm.to(dtype)
    x = torch.randn(2, 24, 3, 4, 5).to(dtype)
    buf = torch.zeros(2, 24, 5, 4, 5, dtype=dtype).contiguous(memory_format=torch.channels_last_3d)
    norm_act(norm, x, True, buf[:, :, 2:])
    assert torch.equal(buf[:, :, 2:], F.silu(norm(x))) and buf[:, :, :2].abs().max() == 0
    b = torch.randn(24).to(dtype)
    with_bias = norm_act(norm, x, False, pre_bias=b)  # a conv's bias, added first and rounded
    assert torch.equal(with_bias, norm(x + b.view(1, -1, 1, 1, 1)))


def test_reflect_fill_is_f_pad():
    x = torch.randn(2, 3, 4, 5, 6)
    buf = torch.zeros(2, 3, 4, 7, 8).contiguous(memory_format=torch.channels_last_3d)
    buf[..., 1:6, 1:7] = x
    _fill_reflect(buf, 1, 1)
    assert torch.equal(buf, F.pad(x, (1, 1, 1, 1, 0, 0), mode="reflect"))


@pytest.fixture(scope="module")
def ltx2_decoders():
    """The tiny causal LTX-2 teacher, its Flash-VAED student, and a non-causal teacher with an operator student."""
    torch.manual_seed(0)
    teacher = load_decoder("ltx-2-tiny")
    flash, _ = prune(teacher, "flash-vaed", "independence", latents=[Z[:, :, :2]], operators="flash-vaed")
    torch.manual_seed(0)
    nc = LTX2DecoderAdapter("nc", AutoencoderKLLTX2Video(**LTX2_TINY_CONFIG, decoder_causal=False).eval())
    nc_student, _ = prune(nc, 0.5, "magnitude", operators="mid=dwsep3d,up0=conv2plus1d,up2=conv2d")
    return {"teacher": teacher, "flash": flash, "nc-teacher": nc, "nc-student": nc_student}


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_causal_decode_and_stream_match_eager(ltx2_decoders, which):
    dec = ltx2_decoders[which]

    def fused_everywhere(d):
        assert len(d.fused.blocks) == 4  # every resnet (mid, up0..up2)
        assert d.fused.base_forward(d.vae.decoder.norm_out) is not None  # and the head's norm + SiLU

    assert_fused_matches_eager(dec, Z, setup=fused_everywhere)


@pytest.mark.parametrize("which", ["teacher", "flash", "nc-teacher", "nc-student"])
def test_fused_decode_with_conv_biases_left_to_the_next_kernels(ltx2_decoders, which):
    """Where cuDNN runs the convs (CUDA) their biases go to the next kernels; forced on the CPU, in float32, the
    decode is eager's within 2e-5. Without the folds (the CPU's default) the runtime is eager up to summation order
    (its float32 3D convs run oneDNN, lab.runtime.fused.conv: within 1e-5)."""
    dec = ltx2_decoders[which]
    ref = dec.decode(Z)
    set_fused(dec)
    try:
        assert dec.fused.blocks
        assert (dec.decode(Z) - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
        dec.fused.fold_conv_bias = True
        assert (dec.decode(Z) - ref).abs().max() < 2e-5
    finally:
        set_fused(dec, False)
    assert torch.equal(dec.decode(Z), ref)


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_bf16_decode_is_eager_within_bf16_rounding(ltx2_decoders, which):
    psnr, err = fused_error_in_bf16(ltx2_decoders[which], Z)
    assert psnr > 60 and err < 2e-2, (psnr, err)


def test_a_fused_non_causal_decoder_refuses_to_stream_as_eager_does(ltx2_decoders):
    from lab.errors import LabError
    dec = ltx2_decoders["nc-student"]
    set_fused(dec)
    try:
        with pytest.raises(LabError, match="not a causal decoder"):
            dec.stream()
    finally:
        set_fused(dec, False)

"""The fused runtime (lab.runtime.fused) against the eager modules it replaces: every fused op (float32 to a
relative 1e-6, bfloat16 bit for bit on the CPU, with and without a cache, T = 1..4), the whole fused
decode of tiny teachers and Flash-VAED students (chunked, streamed), and its Triton kernels through
Triton's interpreter (on the CPU, in a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample, WanRMS_norm

from lab.errors import LabError
from lab.families.wan import WanFoldedRMSNorm
from lab.ops.operators import ConvSpec, Conv2Plus1d, DepthwiseSeparable3d, FrameConv2d, TimePadding
from lab.prune import prune
from lab.runtime.fused import is_fusable, set_fused, why_not_fusable
from lab.runtime.fused.ops import bias_residual_add, folded_rms_norm_act, folds_conv_bias, interleave_upsample, rms_norm_act
from lab.runtime.fused.norms import norm_act
from lab.families.wan.fused import CausalConv

from fused_checks import assert_fused_matches_eager, fused_error_in_bf16  # tests/runtime/fused_checks.py

CL3 = torch.channels_last_3d


def _rel(a, b) -> float:
    return float((a.detach().double() - b.detach().double()).abs().max() / b.detach().double().abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("t", [1, 2, 3, 4])
@pytest.mark.parametrize("bias", [False, True])
def test_rms_norm_act_is_wan_norm_then_silu(dtype, t, bias):
    norm = WanRMS_norm(24, images=False, bias=bias)
    with torch.no_grad():
        norm.gamma.uniform_(0.5, 1.5)
        if bias:
            norm.bias.normal_()
    norm = norm.to(dtype)
    x = torch.randn(2, 24, t, 5, 6).to(dtype)
    ref = F.silu(norm(x))
    # written behind two cached frames of a channels-last buffer, as the runtime does
    buf = torch.zeros(2, 24, 2 + t, 5, 6, dtype=dtype).contiguous(memory_format=CL3)
    out = norm_act(norm, x, True, buf[:, :, 2:])
    assert out.data_ptr() == buf[:, :, 2:].data_ptr() and buf[:, :, :2].abs().max() == 0
    if dtype == torch.float32:
        assert _rel(buf[:, :, 2:], ref) < 1e-6
    else:
        assert torch.equal(buf[:, :, 2:], ref)
    assert torch.equal(rms_norm_act(x, norm.gamma, norm.bias if bias else None, norm.scale, act=False), norm(x))


def test_rms_norm_of_frames_for_the_attention():
    norm = WanRMS_norm(16)  # images=True: gamma (C, 1, 1)
    x = torch.randn(3, 16, 7, 5).contiguous(memory_format=torch.channels_last)
    out = norm_act(norm, x, False)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert _rel(out, norm(x)) < 1e-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_folded_norm_act_is_the_folded_wan_norm_then_silu(dtype):
    c = 12
    norm = WanFoldedRMSNorm(c, images=False)
    a = torch.randn(c, c) * 0.2
    with torch.no_grad():
        norm.quad.copy_((torch.eye(c) + a @ a.T) / c)
        norm.lin.normal_(0, 0.01)
        norm.const.fill_(0.3)
        norm.gamma.uniform_(0.5, 1.5)
    norm = norm.to(dtype)
    assert norm.quad.dtype == torch.float32  # the form stays float32 (lab.models.students.folded_norm)
    x = torch.randn(1, c, 3, 4, 5).to(dtype).contiguous(memory_format=CL3)
    ref = F.silu(norm(x))
    out = norm_act(norm, x, True)
    if dtype == torch.float32:
        assert _rel(out, ref) < 1e-6
    else:
        assert torch.equal(out, ref)
    assert torch.equal(folded_rms_norm_act(x, norm.gamma, None, norm.quad, norm.lin, norm.const, act=False), norm(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_interleave_upsample_is_wans_temporal_upsampler(dtype):
    up = WanResample(8, mode="upsample3d", upsample_out_dim=8).to(dtype)
    y = torch.randn(1, 16, 3, 4, 5).to(dtype)  # a time conv's output: two frames of 8 channels per step
    b, c2, t, h, w = y.shape
    x = y.reshape(b, 2, c2 // 2, t, h, w)
    x = torch.stack((x[:, 0], x[:, 1]), 3).reshape(b, c2 // 2, t * 2, h, w)  # WanResample's interleave
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t * 2, c2 // 2, h, w)
    ref = up.resample[0](frames)  # WanUpsample: nearest-exact 2x through float32
    out = interleave_upsample(y.contiguous(memory_format=CL3))
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, ref)
    # The time conv's bias, left out of the conv (cuDNN's separate pass), is added by the interleave, rounded once
    bias = torch.randn(c2).to(dtype)
    biased = y.clone().add_(bias.view(1, c2, 1, 1, 1))  # what ATen's pass after a cuDNN conv leaves
    ref = interleave_upsample(biased.contiguous(memory_format=CL3))
    assert torch.equal(interleave_upsample(y.contiguous(memory_format=CL3), bias=bias), ref)
    wide = bias.float()  # a float32 bias on a bf16 output: still one rounding, as add_ does
    assert torch.equal(interleave_upsample(y, bias=wide), interleave_upsample(y.clone().add_(wide.view(1, c2, 1, 1, 1))))


def _spec(layer):
    from lab.ops.operators import conv_spec
    return conv_spec(layer, True)


@pytest.mark.parametrize("op", ["conv", "dwsep3d", "conv2plus1d", "conv2d"])
@pytest.mark.parametrize("t", [1, 2, 3, 4])
def test_causal_conv_buffer_is_the_cached_conv(op, t):
    """A stream of chunks of t frames through the runtime's buffer equals the layer called as diffusers
    calls it: no cache on the first chunk (zero padding), then the last two input frames as cache_x."""
    teacher = WanCausalConv3d(6, 10, 3, padding=1)
    layer = teacher
    if op != "conv":
        cls = {"dwsep3d": DepthwiseSeparable3d, "conv2plus1d": Conv2Plus1d, "conv2d": FrameConv2d}[op]
        layer = cls(_spec(teacher))
        layer.init_from(_spec(teacher))
    runtime = CausalConv(layer, CL3)
    cache = None
    for step in range(3):
        x = torch.randn(1, 6, t, 5, 7)
        ref = layer(x, cache)
        cache = torch.cat([cache, x], 2)[:, :, -2:] if cache is not None else x[:, :, -2:]
        runtime.input(x).copy_(x)
        assert _rel(runtime.run(), ref) < 1e-6, f"step {step}"


def test_unknown_operators_and_layouts_are_refused():
    class Other(DepthwiseSeparable3d):
        op_name = "other"
    spec = ConvSpec(4, 4, (3, 3, 3), (1, 1), TimePadding("zeros-cached", 2, 0), torch.zeros(4, 4, 3, 3, 3), None, "x")
    with pytest.raises(LabError, match="no rule for the operator 'other'"):
        CausalConv(Other(spec), CL3)


@pytest.fixture(scope="module")
def students(tiny_wan, wan_flash_half):
    z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    # half width, as wan_flash_half (tests/runtime/conftest.py says why)
    folded, _ = prune(tiny_wan, 0.5, "independence", latents=[z], operators="mid=dwsep3d,up1=conv2plus1d,up2=conv2d",
                      fold_norms=True)
    assert any(isinstance(m, WanFoldedRMSNorm) for m in folded.vae.modules())
    return {"flash": wan_flash_half, "folded": folded}


@pytest.fixture
def decoders(tiny_wan, students):
    return {"teacher": tiny_wan, **students}


@pytest.mark.parametrize("which", ["teacher", "flash", "folded"])
def test_fused_decode_matches_eager(decoders, which):
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(2))

    def second_clip(dec):  # a second clip does not see the first clip's caches
        z2 = torch.randn_like(z)
        assert (dec.decode(z2) - _eager(dec, z2)).abs().max() < 2e-5
    assert_fused_matches_eager(decoders[which], z, check=second_clip)


@pytest.mark.parametrize("which", ["teacher", "flash", "folded"])
def test_conv_bias_left_to_the_next_norm_is_the_same_decode(decoders, which):
    """Where cuDNN runs the convs (CUDA, and the trace) each resnet's convs run without their biases: norm2's
    kernel adds conv1's (pre_bias), the residual kernel conv2's and the shortcut's; the temporal upsamplers' time
    convs too, whose interleave adds them. Forced on here, in float32, it decodes what eager does."""
    z = torch.randn(1, 16, 5, 4, 4, generator=torch.Generator().manual_seed(4))

    def fold(dec):
        # the CPU keeps eager's rounding
        assert dec.fused.fold_conv_bias is None and not folds_conv_bias(z, dec.fused.fold_conv_bias)
        dec.fused.fold_conv_bias = True
    assert_fused_matches_eager(decoders[which], z, setup=fold)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pre_bias_is_the_conv_bias_added_then_rounded(dtype):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 12, 3, 4, 5, generator=g).to(dtype).contiguous(memory_format=CL3)
    pb = torch.randn(12, generator=g).to(dtype)
    gamma = (torch.rand(12, generator=g) + 0.5).to(dtype)
    biased = x + pb.reshape(1, -1, 1, 1, 1)  # ATen's bias add after a cuDNN conv: rounded to the dtype
    assert torch.equal(rms_norm_act(x, gamma, None, 12 ** 0.5, pre_bias=pb), rms_norm_act(biased, gamma, None, 12 ** 0.5))
    a = torch.randn(12, 12, generator=g) * 0.1
    q, lin, k = (torch.eye(12) + a @ a.T) / 12, torch.randn(12, generator=g) * 0.01, torch.tensor(0.2)
    assert torch.equal(folded_rms_norm_act(x, gamma, None, q, lin, k, pre_bias=pb),
                       folded_rms_norm_act(biased, gamma, None, q, lin, k))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bias_residual_add_is_two_biased_convs_summed_as_aten_rounds(dtype):
    g = torch.Generator().manual_seed(6)
    y, h = (torch.randn(1, 8, 2, 3, 4, generator=g).to(dtype).contiguous(memory_format=CL3) for _ in range(2))
    yb, hb = torch.randn(8, generator=g).to(dtype), torch.randn(8, generator=g).to(dtype)
    col = (1, -1, 1, 1, 1)
    out = bias_residual_add(y, yb, h, hb)
    assert out.is_contiguous(memory_format=CL3)
    assert torch.equal(out, (y + yb.reshape(col)) + (h + hb.reshape(col)))
    assert torch.equal(bias_residual_add(y, yb, h), (y + yb.reshape(col)) + h)  # an identity shortcut
    buf = torch.zeros(1, 8, 4, 3, 4, dtype=dtype).contiguous(memory_format=CL3)  # into a conv's input buffer
    bias_residual_add(y, yb, h, None, out=buf[:, :, 2:])
    assert torch.equal(buf[:, :, 2:], (y + yb.reshape(col)) + h) and not buf[:, :, :2].any()


def _eager(dec, z):
    runtime = dec.fused
    runtime.uninstall()
    try:
        return dec.decode(z)
    finally:
        runtime.install()


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_decode_in_bf16(decoders, which):
    z = torch.randn(1, 16, 4, 4, 6, generator=torch.Generator().manual_seed(3))
    psnr, err = fused_error_in_bf16(decoders[which], z)
    assert psnr >= 50 and err <= 5e-2, (psnr, err)


def test_fused_runtime_is_inference_only(tiny_wan):
    set_fused(tiny_wan)
    try:
        z = torch.randn(1, 16, 2, 4, 4)
        with pytest.raises(LabError, match="inference"):
            tiny_wan.decode_with_grad(z)
    finally:
        set_fused(tiny_wan, False)


def test_what_is_not_fused_says_why():
    from diffusers import AutoencoderKLLTX2Video
    from lab.families.ltx2 import LTX2_TINY_CONFIG, LTX2DecoderAdapter
    from lab.models import load_decoder
    conditioned = LTX2DecoderAdapter("ltx-2-conditioned", AutoencoderKLLTX2Video(**LTX2_TINY_CONFIG,
                                                                                timestep_conditioning=True))
    for dec, why in ((load_decoder("tae-64-wan", weights="random"), "no fused runtime"),
                     (conditioned, "timestep conditioning or noise injection in every block")):
        assert not is_fusable(dec) and why in why_not_fusable(dec), (dec.name, why_not_fusable(dec))
        with pytest.raises(LabError, match=why):
            set_fused(dec)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("weight", [False, True])
def test_mean_rms_norm_act_is_ltx_norm_then_silu(dtype, weight):
    from diffusers.models.normalization import RMSNorm
    from lab.runtime.fused.ops import mean_rms_norm_act
    norm = RMSNorm(20, eps=1e-8, elementwise_affine=weight)
    if weight:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
    norm = norm.to(dtype)
    x = torch.randn(2, 20, 3, 4, 5).to(dtype)
    ref = F.silu(norm(x.movedim(1, -1)).movedim(-1, 1))
    buf = torch.zeros(2, 20, 5, 4, 5, dtype=dtype)
    norm_act(norm, x, True, buf[:, :, 1:4])
    assert torch.equal(buf[:, :, 1:4], ref) and buf[:, :, 0].abs().max() == 0
    assert torch.equal(mean_rms_norm_act(x, norm.weight, 1e-8, act=False), norm(x.movedim(1, -1)).movedim(-1, 1))


@pytest.fixture(scope="module")
def ltx_students(tiny_ltx):
    z = torch.randn(1, 128, 2, 2, 2, generator=torch.Generator().manual_seed(1))
    flash, _ = prune(tiny_ltx, "flash-vaed", "independence", latents=[z], operators="flash-vaed")
    return {"teacher": tiny_ltx, "flash": flash}


@pytest.mark.parametrize("which", ["teacher", "flash"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_ltx_decode_matches_eager(ltx_students, which, dtype):
    dec = ltx_students[which].to(dtype)
    try:
        z = torch.randn(1, 128, 3, 2, 3, generator=torch.Generator().manual_seed(2)).to(dtype)
        ref = dec.decode(z)
        set_fused(dec)
        assert dec.fused.blocks and dec.fused.base_forward(dec.vae.decoder.conv_out) is not None
        out = dec.decode(z)
        # The CPU runs each kernel's reference, the eager arithmetic; the convs read channels-last buffers, and
        # float32 3D convs run oneDNN (lab.runtime.fused.conv) where eager's small ones run slow_conv3d: both sum
        # in another order (float32: the last bits, 3e-6 here; bf16 rounds that away).
        if dtype == torch.float32:
            assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max())
        else:
            assert torch.equal(out, ref)
    finally:
        set_fused(dec, False)
        dec.to(torch.float32)
    assert "forward" not in dec.vae.decoder.conv_out.__dict__


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_ltx_with_conv_biases_left_to_the_next_kernels(ltx_students, which):
    """As for Wan: forced on the CPU, in float32, the bias folds decode what eager does."""
    dec = ltx_students[which]
    z = torch.randn(1, 128, 3, 2, 3, generator=torch.Generator().manual_seed(3))
    ref = dec.decode(z)
    set_fused(dec)
    try:
        assert not folds_conv_bias(z, dec.fused.fold_conv_bias)
        dec.fused.fold_conv_bias = True
        assert (dec.decode(z) - ref).abs().max() < 2e-5
    finally:
        set_fused(dec, False)


def test_runtime_spec_loads_fused():
    from lab.models import load_decoder
    from lab.runtime.spec import Runtime, split_runtime
    assert split_runtime("wan2.1@fused+chunk4") == ("wan2.1", Runtime(chunk=4, fused=True))
    torch.manual_seed(5)
    dec = load_decoder("wan2.1-tiny@fused")
    torch.manual_seed(5)
    eager = load_decoder("wan2.1-tiny")
    assert dec.fused is not None and eager.fused is None
    z = torch.randn(1, 16, 3, 4, 4)
    assert (dec.decode(z) - eager.decode(z)).abs().max() < 2e-5
    with pytest.raises(LabError, match="fixed runtime"):
        load_decoder("wan2.1-tiny@fast")


def test_decoding_commands_default_to_fused_where_the_family_says_and_eager_opts_out(tmp_path, monkeypatch):
    # lab decode, lab eval: a plain name decodes @fused where its family's plug-in makes it the default (Wan on
    # the CPU); a name with a runtime runs exactly that runtime; a decoder without a fused runtime, or whose
    # family keeps it off by default (LTX: its full-size teacher loses on the CPU), runs eagerly, without a fuss.
    from dataclasses import replace
    from lab.models import load_decoder, load_for_decoding
    from lab.runtime.fused import RUNTIMES
    from lab.runtime.spec import Runtime, fixed_spec, split_runtime
    assert split_runtime("wan2.1@eager") == ("wan2.1", Runtime())
    with pytest.raises(LabError, match="NAME@eager"):
        split_runtime("wan2.1@eager+fused")
    torch.manual_seed(5)
    folder = load_decoder("wan2.1-tiny").save(tmp_path / "tiny")
    default, eager = load_for_decoding(str(folder)), load_for_decoding(f"{folder}@eager")
    assert fixed_spec("tiny", default) == "tiny@fused" and eager.fused is None
    z = torch.randn(1, 16, 3, 4, 4)
    assert (default.decode(z) - eager.decode(z)).abs().max() < 2e-5
    assert load_for_decoding("wan2.1-tiny@chunk2").fused is None  # the user's runtime, not the default's
    assert load_for_decoding("tae-64-wan").fused is None  # no fused runtime: eager, as before
    assert load_for_decoding("ltx-video-tiny").fused is None
    assert load_for_decoding("ltx-video-tiny@fused").fused is not None
    given = load_decoder("wan2.1-tiny")
    assert load_for_decoding(given) is given and given.fused is None  # a loaded decoder is left as it is
    monkeypatch.setitem(RUNTIMES, "wan", replace(RUNTIMES["wan"], default_on=("cuda",)))  # not measured here
    assert load_for_decoding("wan2.1-tiny").fused is None


# ----- the Triton kernels, through Triton's interpreter on the CPU -------------------------------------

_INTERP = Path(__file__).with_name("triton_interpreter_check.py")


def test_triton_kernels_match_the_references_in_the_interpreter():
    try:
        import triton  # noqa: F401
    except ImportError:
        pytest.skip("triton is not installed (it comes with the test extras on Linux x86_64: pip install -e .[test])")
    env = {**os.environ, "TRITON_INTERPRET": "1", "LAB_TRITON_ON_CPU": "1"}
    proc = subprocess.run([sys.executable, str(_INTERP)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert results and all(r["ran"] for r in results), results
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad


def test_graphs_part_needs_fused_and_is_a_noop_off_cuda():
    from lab.models import load_decoder
    from lab.runtime.spec import Runtime, runtime_note, split_runtime
    assert split_runtime("wan2.1@fused+graphs") == ("wan2.1", Runtime(fused=True, graphs=True))
    with pytest.raises(LabError, match="fused\\+graphs"):
        split_runtime("wan2.1@graphs")
    torch.manual_seed(5)
    dec = load_decoder("wan2.1-tiny@fused+graphs")
    assert dec.fused.graphs and "CUDA graphs need CUDA" in runtime_note(dec, split_runtime("x@fused+graphs")[1])
    torch.manual_seed(5)
    eager = load_decoder("wan2.1-tiny")
    z = torch.randn(1, 16, 5, 4, 4)
    assert (dec.decode(z) - eager.decode(z)).abs().max() < 2e-5


def test_a_failing_or_wrong_kernel_is_disabled_and_the_reference_runs(monkeypatch, caplog):
    from lab.runtime.fused import triton_kernels as tk
    monkeypatch.setattr(tk, "STATUS", {})
    out = torch.zeros(4)
    ref = torch.arange(4.0)

    def broken():
        raise RuntimeError("no such PTX feature")
    assert not tk.guarded("k1", broken, lambda: ref, out) and tk.STATUS["k1"].startswith("disabled: RuntimeError")
    assert not tk.guarded("k1", lambda: out.fill_(7.0) is not None, lambda: ref, out)  # stays disabled

    def wrong():
        out.fill_(3.0)
        return True
    assert tk.guarded("k2", wrong, lambda: ref, out) and torch.equal(out, ref)  # the reference's output stands
    assert tk.STATUS["k2"].startswith("disabled: differs")

    def right():
        out.copy_(ref)
        return True
    assert tk.guarded("k3", right, lambda: ref, out) and tk.STATUS["k3"] == "ok"
    assert "failed" in caplog.text and "differs" in caplog.text


def test_compile_wraps_the_fused_forward_and_undoing_it_keeps_fused(tiny_wan):
    from lab.runtime.compiled import compile_decoder
    set_fused(tiny_wan)
    try:
        fused_forward = tiny_wan.vae.decoder.forward
        compile_decoder(tiny_wan, "default")  # compiles on the first decode; none here (CPU compile takes minutes)
        assert tiny_wan.vae.decoder.forward is not fused_forward
        compile_decoder(tiny_wan, "eager")
        assert tiny_wan.vae.decoder.forward == fused_forward and tiny_wan.fused is not None
        with pytest.raises(LabError, match="fuse first"):
            compile_decoder(tiny_wan, "default")
            set_fused(tiny_wan)
    finally:
        compile_decoder(tiny_wan, "eager")
        set_fused(tiny_wan, False)
    assert "forward" not in tiny_wan.vae.decoder.__dict__

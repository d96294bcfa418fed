"""LTX-2 (diffusers AutoencoderKLLTX2Video) as a lab family, on the tiny test config: the architecture
(stage map, channel map, Flash-VAED widths and plan, swap rules), the teacher adapter and catalog entry,
analysis, pruned students (exact at full width, also non-causal and timestep-conditioned with noise),
independence pruning + the flash-vaed plan, streaming (equal to whole-clip decoding), save/load, and a
3-step distillation run."""

import pytest
import torch
from diffusers import AutoencoderKLLTX2Video
from diffusers.models.autoencoders.autoencoder_kl_ltx2 import LTX2VideoCausalConv3d

from lab.arch import arch_of, get_architecture
from lab.arch.groups import norm_tap
from lab.errors import LabError
from lab.models import load_decoder
from lab.models.registry import get_entry
from lab.families.ltx2 import LTX2, LTX2_TINY_CONFIG, LTX2DecoderAdapter, LTX2StudentAdapter, teacher_widths
from lab.ops.operators import SwapOp, conv_spec, get_operator
from lab.prune import prune

# The shared fixtures (teacher, analysis, flash: tests/arch/conftest.py) read these.
TEACHER, STUDENT = "ltx-2-tiny", "ltx2-flash"
Z = torch.randn(1, 128, 2, 2, 2, generator=torch.Generator().manual_seed(0))  # -> 9 frames of 64x64


def test_architecture_stage_map_widths_and_plan(teacher):
    assert arch_of(teacher) is LTX2 and get_architecture("ltx-2") is LTX2
    assert LTX2.is_causal(teacher.vae)  # decoder_causal defaults to True
    stages = LTX2.stages_of(teacher.vae)
    assert list(stages) == ["conv_in", "mid", "up0", "up1", "up2", "head"]
    assert LTX2.flash_vaed_keep(3) == {"up1": 0.25, "up2": 0.25}
    assert LTX2.plan("flash-vaed") == {"mid": "dwsep3d", "up0": "dwsep3d", "up1": "keep", "up2": "conv2d"}
    groups = {g.name: g for g in LTX2.prune_groups(teacher.vae)}
    # No width-changing resnets: each residual upsampler halves the width (upsample_factor 2).
    assert set(groups) == {"mid.stream", "mid.res0.hidden", "up0.stream", "up0.res0.hidden", "up1.stream",
                           "up1.res0.hidden", "up2.stream", "up2.res0.hidden"}
    assert ("decoder.up_blocks.0.upsamplers.0.conv", "rows_d2s") in groups["up0.stream"].producers
    assert groups["up2.stream"].consumers[-1].path == "decoder.conv_out"
    # The released model's widths from its config alone (meta device).
    full = teacher_widths({"latent_channels": 128, "decoder_block_out_channels": (256, 512, 1024),
                           "decoder_layers_per_block": (5, 5, 5, 5)})
    assert (full["mid.stream"], full["up0.stream"], full["up1.stream"], full["up2.stream"]) == (1024, 512, 256, 128)


def test_teacher_adapter_geometry_normalisation_and_catalog(teacher):
    assert isinstance(teacher, LTX2DecoderAdapter) and teacher.adapter_kind == "ltx-2"
    assert teacher.geometry.compression == (8, 32, 32)  # read off the decoder, not the encoder flags
    out = teacher.decode(Z)
    assert out.shape == (1, 3, 9, 64, 64)
    vae = AutoencoderKLLTX2Video(**LTX2_TINY_CONFIG, scaling_factor=2.0).eval()
    vae.latents_mean.fill_(0.5)
    vae.latents_std.fill_(3.0)
    a = LTX2DecoderAdapter("norm", vae)
    with torch.no_grad():
        assert torch.allclose(a.decode(Z), vae.decode(Z * 3.0 / 2.0 + 0.5).sample.clamp(-1, 1), atol=1e-5)
    assert get_entry("ltx-2").decoder_params() == 528_380_720  # the released decoder, counted on meta
    assert get_entry("ltx-2-tiny").decoder_params() == teacher.decoder_params()


def test_analysis_records_every_group_with_full_norm_statistics(analysis, teacher):
    names = {g.name for g in analysis.groups}
    assert names == {g.name for g in LTX2.prune_groups(teacher.vae)}
    st = analysis.stats[norm_tap("decoder.up_blocks.2.resnets.0.norm1")]
    assert st.gram is not None and st.channels == 8  # channels-first PerChannelRMSNorm, full Gram
    assert analysis.summary()["groups"]
    assert analysis.steps == Z.shape[2]  # a causal decoder is analysed one latent frame at a time (stream())


@pytest.mark.parametrize("chunks", [(1, 1, 1, 1), (2, 2), (1, 3), (4,)])
def test_streaming_gives_the_whole_clip_decode(teacher, flash, chunks):
    z = torch.randn(1, 128, 4, 2, 2, generator=torch.Generator().manual_seed(1))
    for dec in (teacher, flash[0]):  # the flash student streams through its swapped operators too
        assert dec.causal
        whole = dec.decode(z)
        session, outs, i = dec.stream(), [], 0
        for k in chunks:
            outs.append(session.push(z[:, :, i:i + k]))
            i += k
        assert [o.shape[2] for o in outs] == [1 + 8 * (chunks[0] - 1)] + [8 * k for k in chunks[1:]]
        # Equal up to float summation order (convs over differently sized inputs).
        assert (torch.cat(outs, dim=2) - whole).abs().max() < 1e-4
    # Causal: the first frames do not move when the last latent frame changes.
    from lab.notebook.experiments import causality_check
    assert causality_check(teacher, z)["causal"]


@pytest.mark.parametrize("config", [
    {},  # the tiny config: causal, reflect padding
    {"decoder_causal": False, "timestep_conditioning": True, "decoder_inject_noise": (True, False, False, True)},
])
def test_full_width_student_is_the_teacher(config):
    torch.manual_seed(0)
    vae = AutoencoderKLLTX2Video(**LTX2_TINY_CONFIG, **config).eval()
    with torch.no_grad():  # diffusers starts noise scales at zero; make them matter
        for n, p in vae.decoder.named_parameters():
            if "per_channel_scale" in n:
                p.normal_(0.0, 0.1)
    t = LTX2DecoderAdapter("t", vae, decode_timestep=0.05)
    s, info = prune(t, 1.0, "independence", latents=[Z])
    s.decode_timestep = t.decode_timestep
    assert isinstance(s, LTX2StudentAdapter) and len(info["transfer"]["merged_residual"]) == 3
    torch.manual_seed(1)
    ref = t.decode(Z)
    torch.manual_seed(1)
    assert torch.allclose(s.decode(Z), ref, atol=1e-5)


def test_independence_flash_vaed_student_decodes_the_same_shape(teacher, flash):
    student, info = flash
    assert info["ratios"] == {"up1": 0.25, "up2": 0.25}
    assert info["widths"] == {"up1.stream": 4, "up1.res0.hidden": 4, "up2.stream": 2, "up2.res0.hidden": 2}
    assert info["operators"] == {"mid": "dwsep3d", "up0": "dwsep3d", "up2": "conv2d"}
    assert info["decoder_params"] < 0.7 * info["teacher_decoder_params"]
    dec = student.vae.decoder
    assert type(dec.mid_block.resnets[0].conv1).__name__ == "DepthwiseSeparable3d"
    assert type(dec.up_blocks[2].resnets[0].conv2).__name__ == "FrameConv2d"
    assert isinstance(dec.up_blocks[1].resnets[0].conv1, LTX2VideoCausalConv3d)  # up1: keep
    assert isinstance(dec.up_blocks[0].upsamplers[0].conv, LTX2VideoCausalConv3d)  # kept subtree
    op = dec.mid_block.resnets[0].conv1
    assert op.time.mode == "replicate-causal" and op.depthwise.padding_mode == "reflect"
    out = student.decode(Z)
    assert out.shape == teacher.decode(Z).shape and torch.isfinite(out).all()
    # Causal in time, as the teacher: changing the last latent frame leaves the first output frame alone.
    z2 = Z.clone()
    z2[:, :, -1] += 1.0
    assert torch.allclose(student.decode(z2)[:, :, 0], out[:, :, 0], atol=1e-5)


def test_operators_follow_the_decoders_causality_in_a_non_causal_teacher():
    torch.manual_seed(0)
    t = LTX2DecoderAdapter("nc", AutoencoderKLLTX2Video(**LTX2_TINY_CONFIG, decoder_causal=False).eval())
    s, _ = prune(t, 1.0, "random", fold=False, operators="mid=dwsep3d,up2=conv2d")
    ops = [m for m in s.vae.modules() if isinstance(m, SwapOp)]
    assert ops and all(m.time.mode == "replicate-symmetric" for m in ops)
    assert s.decode(Z).shape == (1, 3, 9, 64, 64)
    assert not t.causal and not s.causal  # non-causal LTX-2 decoders decode whole clips only
    with pytest.raises(LabError, match="not a causal decoder"):
        s.stream()


@pytest.mark.parametrize("causal", [True, False])
def test_dwsep3d_replaces_an_ltx2_conv_exactly_on_rank_one_kernels(causal):
    # Reflect padding and the per-call causal argument are kept: on a kernel whose per-input-channel
    # slices are rank 1, the depthwise-separable op is the conv itself, for either call setting.
    g = torch.Generator().manual_seed(0)
    conv = LTX2VideoCausalConv3d(4, 6, kernel_size=3, spatial_padding_mode="reflect")
    with torch.no_grad():
        conv.conv.weight.copy_(torch.einsum("oi,ik->oik", torch.randn(6, 4, generator=g),
                                            torch.randn(4, 27, generator=g)).reshape(6, 4, 3, 3, 3))
    op = get_operator("dwsep3d").build(conv_spec(conv, causal))
    op.init_from(conv_spec(conv, causal))
    x = torch.randn(1, 4, 5, 6, 6, generator=g)
    with torch.no_grad():
        assert torch.allclose(op(x, causal=causal), conv(x, causal=causal), atol=1e-5)
        assert torch.allclose(op(x, causal=not causal), conv(x, causal=not causal), atol=1e-5)


def test_save_and_load_round_trip(flash, tmp_path):
    student, _ = flash
    student.save(tmp_path / "s")
    again = load_decoder(str(tmp_path / "s"))
    assert isinstance(again, LTX2StudentAdapter) and again.arch is LTX2
    assert again.decoder_params() == student.decoder_params()
    assert torch.equal(again.decode(Z), student.decode(Z))


def test_three_step_distillation_run(tmp_path, sample_clips):
    from lab.distill import distill, load_config
    from lab.runs.store import RunReader

    cfg = load_config({
        "teacher": "ltx-2-tiny", "teacher_weights": "random", "eval_every": 100, "checkpoint_every": 0,
        "sample_every": 0, "seed": 0, "threads": 1,
        "student": {"keep": "flash-vaed", "criterion": "independence", "operators": "flash-vaed",
                    "calibration_clips": ["bbb-128"], "calibration_frames": 9, "calibration_size": 64},
        # 64x64 crops: LTX-2 pads space with 'reflect', which needs latents of at least 2x2.
        "data": {"clips": ["bbb-128"], "val_clips": ["bigbuckbunny"], "crop": 64, "frames": 9, "short_sides": [64],
                 "val_frames": 9, "val_size": 64},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
        "ema": {"enabled": False},
        "phases": [
            {"name": "align", "losses": {"feature": 1.0}, "max_steps": 1},
            {"name": "joint", "losses": {"feature": 1.0, "pixel_teacher_l1": 1.0, "pixel_real_l1": 0.5},
             "feature_decay": True, "max_steps": 2},
        ],
    })
    final = distill(cfg, tmp_path / "run")
    with RunReader(tmp_path / "run") as r:
        s = r.scalars()
    assert len(s["train/feature"]) == 3 and len(s["train/pixel_teacher_l1"]) == 2
    assert all(torch.isfinite(torch.tensor(v)) for _, v in s["train/pixel_teacher_l1"])
    best = load_decoder(str(tmp_path / "run" / "last"))
    assert isinstance(best, LTX2StudentAdapter)
    assert best.decode(Z).shape == (1, 3, 9, 64, 64)
    assert "val/psnr" in final["metrics"]

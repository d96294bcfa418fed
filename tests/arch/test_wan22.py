"""The Wan 2.2 family (lab.families.wan.v22) on its tiny test config (the real class, AutoencoderKLWan with
is_residual=True, 48 latent channels, patch size 2, random weights): the teacher decodes and streams,
analysis runs, Flash-VAED pruning gives a student that decodes, streams and reloads, the fold is exact
on truly redundant channels (through the DupUp3D shortcut gather), and a few distillation steps run."""

import pytest
import torch

from lab.analysis import analyze
from lab.families.wan import wan_groups
from lab.families.wan.v22 import WAN22, wan22_groups
from lab.errors import ConfigError, LabError
from lab.models import load_decoder
from lab.families.wan.v22.student import IndexedDupUp3D, Wan22StudentAdapter
from lab.prune import prune

# The shared fixtures (teacher, analysis, flash: tests/arch/conftest.py) read these.
TEACHER, STUDENT = "wan2.2-tiny", "tiny22"
Z = torch.randn(1, 48, 3, 2, 2, generator=torch.Generator().manual_seed(0))


def test_catalog_entries_and_full_size_parameter_count():
    from lab.models.registry import get_entry
    full, tiny = get_entry("wan2.2"), get_entry("wan2.2-tiny")
    assert full.latent_channels == tiny.latent_channels == 48 and full.compression == (4, 16, 16)
    assert full.decoder_params() == 555_051_580  # post_quant_conv + decoder of the TI2V-5B VAE (meta device)
    assert "random unless asked" in full.weights and "Wan-AI/Wan2.2-TI2V-5B-Diffusers" in full.weights


def test_teacher_decodes_streams_and_chunks_like_diffusers(teacher):
    assert teacher.arch is WAN22 and teacher.geometry.channels == 48 and teacher.geometry.compression == (4, 16, 16)
    whole = teacher.decode(Z)
    assert whole.shape == (1, 3, 9, 32, 32)
    chunks = list(teacher.decode_stream(Z))
    assert [c.shape[2] for c in chunks] == [1, 4, 4]
    assert torch.equal(torch.cat(chunks, 2), whole)
    with torch.no_grad():  # diffusers' own decode (unpatchify included): the same up to float rounding
        ref = teacher.vae.decode(teacher.denormalize(Z)).sample
    assert (ref - whole).abs().max() < 1e-5
    from lab.runtime.chunked import set_chunk
    try:
        assert (set_chunk(teacher, 2).decode(Z) - whole).abs().max() < 1e-5
    finally:
        set_chunk(teacher, 1)


def test_channel_map_and_what_cannot_be_pruned(teacher, analysis):
    groups = {g.name: g for g in wan22_groups(teacher.vae)}
    # conv_in..up2's input is one stream (channel-wise DupUp3D shortcuts in up0/up1) that the mid attention reads.
    assert not groups["up0.stream"].prunable and groups["up0.stream"].width == 64
    assert groups["up2.stream"].width == 32 and groups["up3.in"].width == 32 and groups["up3.stream"].width == 16
    assert all(g.prunable for n, g in groups.items() if n != "up0.stream")
    assert ("decoder.up_blocks.0.upsampler.time_conv", "rows_paired") in groups["up0.stream"].producers
    assert WAN22.flash_vaed_keep(4) == {"up2": 0.125, "up3": 0.125}
    with pytest.raises(ConfigError, match="cannot be pruned"):
        prune(teacher, {"mid": 0.5}, "independence", analysis=analysis)
    with pytest.raises(LabError, match="Wan 2.1 decoder"):
        wan22_groups(load_decoder("wan2.1-tiny").vae)
    with pytest.raises(LabError, match="load it as a Wan 2.2 teacher"):
        wan_groups(teacher.vae)
    # Analysis recorded every group at its width.
    widths = {g["group"]: g["width"] for g in analysis.summary()["groups"]}
    assert widths == {n: g.width for n, g in groups.items()}


def test_flash_vaed_student_decodes_streams_and_is_causal(teacher, flash):
    s, info = flash
    assert isinstance(s, Wan22StudentAdapter) and s.arch is WAN22
    assert info["widths"]["up3.in"] == 4 and info["widths"]["up3.stream"] == 2 and info["widths"]["up2.stream"] == 4
    assert info["operators"]["up3"] == "conv2d" and info["operators"]["mid"] == "dwsep3d"
    assert isinstance(s.vae.decoder.up_blocks[2].avg_shortcut, IndexedDupUp3D)
    assert s.decoder_params() < 0.25 * teacher.decoder_params()
    whole = s.decode(Z)
    assert whole.shape == teacher.decode(Z).shape
    assert torch.equal(torch.cat(list(s.decode_stream(Z)), 2), whole)
    z2 = Z.clone()
    z2[:, :, 2] += 1.0
    out = s.decode(z2)
    assert torch.equal(out[:, :, :5], whole[:, :, :5]) and not torch.equal(out[:, :, 5:], whole[:, :, 5:])


def test_student_saves_and_reloads_identically(flash, tmp_path):
    s, _ = flash
    r = load_decoder(str(s.save(tmp_path / "st")))
    assert type(r) is type(s) and r.name == "tiny22" and r.vae.config.kept == s.vae.config.kept
    assert r.vae.config.operators == s.vae.config.operators
    assert torch.equal(r.decode(Z), s.decode(Z))


def test_diffusers_facade_serves_the_student_with_the_wan_api(teacher, flash):
    from lab.models.diffusers_compat import as_diffusers_vae
    s, _ = flash
    vae = as_diffusers_vae(s, teacher=teacher)
    assert type(vae).__name__ == "WanDiffusersVAE" and vae.config.z_dim == 48
    assert (vae.decode(teacher.denormalize(Z)).sample - s.decode(Z)).abs().max() < 1e-4

def test_full_keep_is_the_teacher(teacher, analysis):
    s, _ = prune(teacher, {"up3": 1.0}, "independence", analysis=analysis)
    assert torch.equal(s.decode(Z), teacher.decode(Z))


def test_folded_norms_on_request(teacher, analysis):
    s, info = prune(teacher, {"up3": 0.5}, "independence", analysis=analysis, fold_norms=True)
    assert "decoder.norm_out" in s.vae.config.folded_norms and info["transfer"]["norm_scales"]["decoder.norm_out"] == "folded"
    assert all(hasattr(s.vae.get_submodule(n), "quad") for n in s.vae.config.folded_norms)
    assert s.decode(Z).shape == (1, 3, 9, 32, 32)

def test_independence_recovers_exactly_redundant_channels():
    """Duplicate half the channels of every up3 group and of the stream up2's DupUp3D shortcut reads, so
    that up3's input (upsampler + shortcut) is redundant too: a 50% up3 is then exact through the
    student's shortcut gather and the folds, and only the independence criterion finds the set."""
    teacher = load_decoder("wan2.2-tiny")
    vae = teacher.vae
    groups = wan22_groups(vae)
    stream0 = next(g for g in groups if g.name == "up0.stream")
    attn = "decoder.mid_block.attentions.0.proj"
    with torch.no_grad():
        for g in [g for g in groups if g.stage == "up3"] + [stream0]:
            h = g.width // 2
            for path, role in g.producers + ([(attn, "rows")] if g is stream0 else []):
                m = vae.get_submodule(path)
                if role == "rows_paired":
                    c = m.weight.shape[0] // 2
                    rows = [list(range(h, c)), list(range(c + h, 2 * c))]
                    src = [list(range(0, h)), list(range(c, c + h))]
                else:
                    rows, src = [list(range(h, g.width))], [list(range(0, h))]
                for r, s in zip(rows, src):
                    m.weight[r] = m.weight[s]
                    m.bias[r] = m.bias[s]
            if g is not stream0:
                for n in g.norms:
                    vae.get_submodule(n).gamma[h:] = vae.get_submodule(n).gamma[:h]
    ref = teacher.decode(Z)
    a = analyze(teacher, Z)
    err = {}
    for crit in ("independence", "random"):
        s, _ = prune(teacher, {"up3": 0.5}, crit, analysis=a, ridge=0.0, seed=1)
        err[crit] = (s.decode(Z) - ref).abs().max().item()
    assert err["independence"] < 1e-4 < 1e-2 < err["random"], err


def test_a_few_distillation_steps_run(tmp_path, sample_clips):
    from pathlib import Path

    from lab.distill import distill, load_config
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "distill" / "tiny.toml").to_dict()
    for ph in cfg["phases"]:
        ph["max_steps"] = 1
    cfg["phases"][2]["frames"] = None
    cfg["teacher"] = "wan2.2-tiny"
    cfg["student"].update(keep="flash-vaed", operators=None)
    cfg.update(eval_every=3, checkpoint_every=3, sample_every=0)
    final = distill(cfg, tmp_path / "run")
    assert final["step"] == 3
    s = load_decoder(final["last"])
    assert isinstance(s, Wan22StudentAdapter) and s.vae.config.operators
    assert s.decode(Z).shape == (1, 3, 9, 32, 32)

"""Pruned students of the tiny Wan teacher: shapes, causal streaming, save/reload, exactness of the
fold when channels are truly redundant, and the errors users hit."""


import pytest
import torch

from lab.analysis import analyze
from lab.families.wan import wan_groups
from lab.errors import ConfigError, LabError
from lab.models import load_decoder
from lab.prune import prune, register_criterion, transfer
from lab.prune.criteria import CRITERIA

Z = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def analysis(tiny_wan):
    return analyze(tiny_wan, Z)


@pytest.fixture(scope="module")
def student(tiny_wan, analysis):
    s, info = prune(tiny_wan, {"up2": 0.25, "up3": 0.25}, "independence", analysis=analysis, name="tiny-student",
                    fold_norms=True)
    return s, info


def test_norms_stay_plain_unless_asked(tiny_wan, analysis):
    s, info = prune(tiny_wan, {"up2": 0.25, "up3": 0.25}, "independence", analysis=analysis)
    assert not s.vae.config.folded_norms
    assert isinstance(info["transfer"]["norm_scales"]["decoder.norm_out"], float)


def test_student_shapes_widths_and_config(student, tiny_wan):
    s, info = student
    assert s.decode(Z).shape == tiny_wan.decode(Z).shape == (1, 3, 9, 32, 32)
    assert info["widths"]["up2.stream"] == 4 and info["widths"]["up3.res1.hidden"] == 2
    assert s.vae.decoder.up_blocks[3].resnets[0].conv1.out_channels == 2
    assert s.vae.decoder.conv_out.in_channels == 2
    assert s.decoder_params() < tiny_wan.decoder_params()
    c = s.vae.config
    assert (c.teacher, c.criterion, c.ratios) == ("wan2.1-tiny", "independence", {"up2": 0.25, "up3": 0.25})
    assert len(c.kept["up3.stream"]) == 2 and s.teacher_name == "wan2.1-tiny" and s.family == "student"
    # Every norm of a pruned group divides by the teacher's estimated full-width rms; the others stay plain.
    assert "decoder.norm_out" in c.folded_norms and "decoder.up_blocks.3.resnets.1.norm2" in c.folded_norms
    assert not any(".up_blocks.1." in n for n in c.folded_norms)
    assert all(hasattr(s.vae.get_submodule(n), "quad") for n in c.folded_norms)
    assert info["transfer"]["norm_scales"]["decoder.norm_out"] == "folded"
    # The same module paths as the diffusers VAE (stage maps and operator swaps rely on them).
    for path in ("post_quant_conv", "decoder.conv_in", "decoder.mid_block", "decoder.up_blocks.3",
                 "decoder.norm_out", "decoder.conv_out"):
        s.vae.get_submodule(path)


def test_student_streams_causally(student):
    s, _ = student
    whole = s.decode(Z)
    assert torch.equal(torch.cat(list(s.decode_stream(Z)), dim=2), whole)
    for t in (1, 2):
        z2 = Z.clone()
        z2[:, :, t] += 1.0
        out = s.decode(z2)
        first_changed = 1 + 4 * (t - 1)
        assert torch.equal(out[:, :, :first_changed], whole[:, :, :first_changed])
        assert not torch.equal(out[:, :, first_changed:], whole[:, :, first_changed:])


def test_student_saves_and_reloads_identically(student, tmp_path):
    s, _ = student
    folder = s.save(tmp_path / "st")
    assert (folder / "config.json").exists() and (folder / "diffusion_pytorch_model.safetensors").exists()
    r = load_decoder(str(folder))
    assert type(r) is type(s) and r.name == "tiny-student"
    assert r.vae.config.kept == s.vae.config.kept and r.vae.config.folded_norms == s.vae.config.folded_norms
    assert torch.equal(r.decode(Z), s.decode(Z))


def test_full_keep_is_the_teacher(tiny_wan, analysis):
    s, _ = prune(tiny_wan, {"up3": 1.0}, "independence", analysis=analysis)
    assert not s.vae.config.folded_norms
    assert torch.equal(s.decode(Z), tiny_wan.decode(Z))


def test_independence_recovers_exactly_redundant_channels(tiny_wan):
    """Duplicate half the channels of every up3 group: a 50% student can then be exact, and only a
    criterion that sees the redundancy (not magnitude or chance) finds the set that makes it so."""
    teacher = load_decoder("wan2.1-tiny")
    vae = teacher.vae
    with torch.no_grad():
        for g in (g for g in wan_groups(vae) if g.stage == "up3"):
            h = g.width // 2
            for path, _ in g.producers:
                m = vae.get_submodule(path)
                m.weight[h:] = m.weight[:h]
                m.bias[h:] = m.bias[:h]
            for n in g.norms:
                vae.get_submodule(n).gamma[h:] = vae.get_submodule(n).gamma[:h]
    ref = teacher.decode(Z)
    a = analyze(teacher, Z)
    err = {}
    for crit in ("independence", "independence-out", "magnitude", "random"):
        s, _ = prune(teacher, {"up3": 0.5}, crit, analysis=a, ridge=0.0)  # plain least squares: exact folds
        err[crit] = (s.decode(Z) - ref).abs().max().item()
    assert err["independence"] < 1e-4 and err["independence-out"] < 1e-4
    assert err["magnitude"] > 1e-2 and err["random"] > 1e-2
    # The default fold ridge shrinks the exact fold only slightly.
    s, _ = prune(teacher, {"up3": 0.5}, "independence", analysis=a)
    assert (s.decode(Z) - ref).abs().max().item() < 0.25 * min(err["magnitude"], err["random"]), err


def test_custom_criterion_plugs_in(tiny_wan, analysis):
    register_criterion("first-k", lambda ctx: list(range(ctx.k)), needs_stats=False, description="first k")
    try:
        s, _ = prune(tiny_wan, {"up3": 0.5}, "first-k", analysis=analysis)
        assert s.vae.config.kept["up3.stream"] == [0, 1, 2, 3]
        register_criterion("broken", lambda ctx: [0, 0], needs_stats=False)
        with pytest.raises(ConfigError, match="distinct"):
            prune(tiny_wan, {"up3": 0.5}, "broken", analysis=analysis)
    finally:
        CRITERIA.pop("first-k", None)
        CRITERIA.pop("broken", None)


@pytest.mark.parametrize("keep, match", [
    (0.0, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), ({"up2": -0.1}, r"\(0, 1\]"),
    ({"up9": 0.5}, "unknown stage 'up9'"), ({"mid": 0.5}, "cannot be pruned"), ({"head": 0.5}, "cannot be pruned"),
    ("up2=abc", "cannot read keep ratio"),
])
def test_bad_keep_ratios_are_refused(tiny_wan, analysis, keep, match):
    with pytest.raises(ConfigError, match=match):
        prune(tiny_wan, keep, "independence", analysis=analysis)


def test_other_errors(tiny_wan, tiny_ltx, analysis, student):
    with pytest.raises(ConfigError, match="unknown criterion 'indepedence'.*Did you mean independence"):
        prune(tiny_wan, 0.5, "indepedence", analysis=analysis)
    with pytest.raises(ConfigError, match="unknown stage 'up7'"):  # LTX teachers prune now; bad stages still fail
        prune(tiny_ltx, {"up7": 0.5})
    with pytest.raises(ConfigError, match="only teachers"):
        prune(student[0], 0.5)
    # A student of one teacher cannot take another teacher's weights.
    from diffusers import AutoencoderKLWan
    wide = AutoencoderKLWan(base_dim=16, z_dim=16)
    with pytest.raises(LabError, match="teacher/student mismatch"):
        transfer(wide, student[0].vae, wan_groups(wide), {}, None)


def test_cli_prune_prints_decoder_params_of_the_saved_student(tmp_path, capsys):
    import json

    from lab.cli import main
    rc = main(["prune", "--teacher", "wan2.1-tiny", "--keep", "up3=0.5", "--criterion", "magnitude",
               "--frames", "5", "--out", str(tmp_path / "cli-st"), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["decoder_params"] == load_decoder(str(tmp_path / "cli-st")).decoder_params()
    rc = main(["prune", "--teacher", "wan2.1-tiny", "--keep", "2", "--out", str(tmp_path / "x"), "--json"])
    assert rc == 1 and "(0, 1]" in json.loads(capsys.readouterr().out)["error"]


def test_students_can_be_analysed_with_the_same_hooks(student):
    s, _ = student
    a = analyze(s, Z)
    widths = {g["group"]: g["width"] for g in a.summary()["groups"]}
    assert widths["up3.stream"] == 2 and widths["up2.res0.hidden"] == 4 and widths["up1.stream"] == 32

"""Folded RMS norms of pruned Wan students (lab.families.wan.student.WanFoldedRMSNorm)."""

import copy
from types import SimpleNamespace

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

from lab.analysis import ChannelStats
from lab.arch.groups import norm_tap
from lab.families.wan import WanFoldedRMSNorm, WanStudentVAE
from lab.models.students.folded_norm import FoldedRMSNorm
from lab.prune.transfer import folded_norm_state


def _redundant(n=400, seed=0):
    """(N, 8) activations: 3 free channels, 5 exact affine functions of them."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, 3, generator=g) * torch.tensor([3.0, 1.0, 0.2])
    return torch.cat([base, base @ torch.randn(3, 5, generator=g) + 0.5], dim=1)


def test_wan_folded_norm_matches_the_teacher_norm_on_redundant_channels():
    x = _redundant()
    st = ChannelStats(8)
    st.update(x, channel_dim=-1)
    state = folded_norm_state(SimpleNamespace(stats={norm_tap("n"): st}), "n", [0, 1, 2], 8, ridge=0.0)
    # Channels first, as Wan's video tensors: (B, C, T, H, W).
    video = x.T.reshape(1, 8, 4, 10, 10)
    teacher = WanRMS_norm(8, images=False)
    with torch.no_grad():
        teacher.gamma.copy_(torch.linspace(0.5, 2.0, 8).view(8, 1, 1, 1))
    norm = WanFoldedRMSNorm(3, images=False)
    norm.load_state_dict({"gamma": teacher.gamma[:3].detach().clone(),
                          **{k[2:]: v.float() for k, v in state.items()}})
    want = teacher(video)[:, :3]
    assert torch.allclose(norm(video[:, :3]), want, atol=1e-4)
    # A plain (even globally rescaled) narrower norm is off by a per-position factor.
    plain = WanRMS_norm(3, images=False)
    with torch.no_grad():
        plain.gamma.copy_(teacher.gamma[:3])
    got = plain(video[:, :3])
    best_scale = float(((got * want).sum() / (got * got).sum()).detach())
    assert (got * best_scale - want).abs().max() > 0.1


def test_identity_form_is_the_plain_norm():
    x = torch.randn(2, 5, 3, 6, 6)
    norm, plain = WanFoldedRMSNorm(5, images=False), WanRMS_norm(5, images=False)
    assert torch.allclose(norm(x), plain(x), atol=1e-5)


def test_folded_norms_are_built_from_the_config_and_old_configs_load_plain(tiny_wan):
    from lab.models.students.base import plain as _plain
    from lab.families.wan import TEACHER_KEYS
    tc = {k: _plain(tiny_wan.vae.config[k]) for k in TEACHER_KEYS if k in tiny_wan.vae.config}
    path = "decoder.up_blocks.3.resnets.0.norm2"
    old = WanStudentVAE(teacher_config=tc, widths={"up3.res0.hidden": 2})  # saved before folded norms
    assert type(old.get_submodule(path)) is WanRMS_norm
    new = WanStudentVAE(teacher_config=tc, widths={"up3.res0.hidden": 2}, folded_norms=[path])
    assert isinstance(new.get_submodule(path), WanFoldedRMSNorm)
    assert new.get_submodule(path).quad.shape == (2, 2)
    import pytest

    from lab.errors import ConfigError
    with pytest.raises(ConfigError, match="not an RMS norm"):
        WanStudentVAE(teacher_config=tc, folded_norms=["decoder.up_blocks.3.resnets.0.conv1"])


@pytest.mark.parametrize("kind", ["wan", "ltx"])
def test_folded_norm_cast_to_bf16_keeps_an_fp32_form_under_autocast(kind):
    # ms = (x - 10)^2 + 1: terms near 100 that cancel to ~1, where bf16's spacing is 0.5-1, so a bf16
    # form comes out near or below 0 and the norm divides by sqrt(eps).
    norm = WanFoldedRMSNorm(1, images=False) if kind == "wan" else FoldedRMSNorm(1)
    with torch.no_grad():
        norm.quad.fill_(1.0), norm.lin.fill_(-20.0), norm.const.fill_(101.0)
    shape = (2, 1, 3, 4, 4) if kind == "wan" else (2, 3, 4, 4, 1)  # channels first / last
    x = (10.0 + 0.3 * torch.randn(shape, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)
    want = norm(x.float())
    low = copy.deepcopy(norm).to(torch.bfloat16)
    assert [getattr(low, n).dtype for n in ("quad", "lin", "const")] == [torch.float32] * 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = low(x)
    assert got.dtype == torch.bfloat16 and torch.isfinite(got).all()
    assert torch.allclose(got.float(), want, rtol=1e-2, atol=1e-2)

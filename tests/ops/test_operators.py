"""Each operator, built from a real diffusers conv: causality, Wan's cache contract, LTX padding, and
the exactness of the initialisations where they must be exact."""

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_ltx import LTXVideoCausalConv3d
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d

from lab.ops.operators import Conv2Plus1d, DepthwiseSeparable3d, FrameConv2d, conv_spec, get_operator

OPS = ["dwsep3d", "conv2plus1d", "conv2d"]


def _build(layer, op_name, **init):
    spec = conv_spec(layer)
    op = get_operator(op_name).build(spec)
    op.init_from(spec, **init)
    return op


def _wan(i=6, o=5):
    return WanCausalConv3d(i, o, 3, padding=1)


def _ltx(causal, i=6, o=5):
    return LTXVideoCausalConv3d(i, o, 3, is_causal=causal)


@pytest.mark.parametrize("op_name", OPS)
@pytest.mark.parametrize("flavor", ["wan", "ltx-causal"])
@torch.no_grad()
def test_change_at_frame_t_leaves_earlier_outputs(op_name, flavor):
    layer = _wan() if flavor == "wan" else _ltx(True)
    op = _build(layer, op_name)
    x = torch.randn(1, 6, 6, 5, 5)
    t = 3
    x2 = x.clone()
    x2[:, :, t] += 1.0
    y, y2 = op(x), op(x2)
    assert y.shape == (1, 5, 6, 5, 5)
    assert torch.equal(y[:, :, :t], y2[:, :, :t])
    assert not torch.allclose(y[:, :, t], y2[:, :, t])
    if op_name != "conv2d":  # temporal ops must actually use the past
        assert not torch.allclose(y[:, :, t + 1], y2[:, :, t + 1])
    else:
        assert torch.equal(y[:, :, t + 1:], y2[:, :, t + 1:])


@pytest.mark.parametrize("op_name", OPS)
@torch.no_grad()
def test_wan_cache_contract_chunked_equals_whole(op_name):
    """What WanResidualBlock does: call conv(chunk, cache) with the last 2 input frames seen so far."""
    op = _build(_wan(), op_name)
    x = torch.randn(1, 6, 7, 4, 4)
    whole = op(x)
    outs, cache = [], None
    for chunk in (x[:, :, :1], x[:, :, 1:3], x[:, :, 3:4], x[:, :, 4:7]):
        outs.append(op(chunk, cache))
        cache = torch.cat([cache, chunk], 2)[:, :, -2:] if cache is not None else chunk[:, :, -2:]
    torch.testing.assert_close(torch.cat(outs, 2), whole, rtol=1e-5, atol=1e-5)


def _rank1_per_input(layer):
    o, i = layer.weight.shape[:2] if isinstance(layer, WanCausalConv3d) else layer.conv.weight.shape[:2]
    w = torch.randn(o, i, 1) * torch.randn(1, i, 27)
    target = layer.weight if isinstance(layer, WanCausalConv3d) else layer.conv.weight
    with torch.no_grad():
        target.copy_(w.reshape_as(target))


@pytest.mark.parametrize("flavor", ["wan", "ltx-causal", "ltx-symmetric"])
@torch.no_grad()
def test_dwsep_fit_is_exact_for_rank1_per_input_channel(flavor):
    layer = {"wan": _wan, "ltx-causal": lambda: _ltx(True), "ltx-symmetric": lambda: _ltx(False)}[flavor]()
    _rank1_per_input(layer)
    spec = conv_spec(layer)
    op = DepthwiseSeparable3d(spec)
    info = op.init_from(spec)
    assert info["weight_fit_rel_err"] < 1e-6
    x = torch.randn(2, 6, 5, 6, 7)
    # Same output as the teacher layer, padding included (zeros for Wan, repeated edges for LTX).
    torch.testing.assert_close(op(x), layer(x), rtol=1e-4, atol=1e-4)


@torch.no_grad()
def test_dwsep_fit_is_inexact_for_a_generic_kernel():
    info = DepthwiseSeparable3d(conv_spec(_wan())).init_from(conv_spec(_wan()))
    assert info["weight_fit_rel_err"] > 0.1


@pytest.mark.parametrize("flavor", ["wan", "ltx-symmetric"])
@torch.no_grad()
def test_conv2plus1d_fit_is_exact_for_a_separable_kernel(flavor):
    layer = _wan() if flavor == "wan" else _ltx(False)
    w_target = layer.weight if flavor == "wan" else layer.conv.weight
    o, i = w_target.shape[:2]
    t_k = torch.randn(o, o, 3)  # T[o, m, t] with m = out channels
    s_k = torch.randn(o, i, 3, 3)  # S[m, i, h, w]
    w_target.copy_(torch.einsum("omt,mihw->oithw", t_k, s_k))
    spec = conv_spec(layer)
    op = Conv2Plus1d(spec)
    assert op.init_from(spec)["weight_fit_rel_err"] < 1e-6
    x = torch.randn(1, i, 5, 6, 6)
    torch.testing.assert_close(op(x), layer(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("flavor", ["wan", "ltx-causal", "ltx-symmetric"])
@torch.no_grad()
def test_conv2d_sum_collapse_exact_on_temporally_constant_input(flavor):
    layer = {"wan": _wan, "ltx-causal": lambda: _ltx(True), "ltx-symmetric": lambda: _ltx(False)}[flavor]()
    op = _build(layer, "conv2d", collapse="sum")
    x = torch.randn(1, 6, 1, 5, 5).expand(-1, -1, 5, -1, -1).contiguous()
    # Wan pads time with zeros, so its first 2 outputs see fewer real frames; LTX repeats edge frames.
    first = 2 if flavor == "wan" else 0
    torch.testing.assert_close(op(x)[:, :, first:], layer(x)[:, :, first:], rtol=1e-4, atol=1e-4)
    cur = _build(layer, "conv2d", collapse="current")
    assert not torch.allclose(cur(x)[:, :, first:], layer(x)[:, :, first:], atol=1e-3)


@torch.no_grad()
def test_conv2d_current_tap_is_the_frame_the_output_belongs_to():
    for layer, tap in ((_wan(), 2), (_ltx(True), 2), (_ltx(False), 1)):
        w = layer.weight if isinstance(layer, WanCausalConv3d) else layer.conv.weight
        keep = torch.zeros_like(w)
        keep[:, :, tap] = w[:, :, tap]
        w.copy_(keep)  # only the current-frame tap is non-zero: the 2D op must equal the 3D one
        op = _build(layer, "conv2d", collapse="current")
        x = torch.randn(1, 6, 4, 5, 5)
        torch.testing.assert_close(op(x), layer(x), rtol=1e-4, atol=1e-4)
        assert isinstance(op, FrameConv2d)

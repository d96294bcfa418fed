"""Swapped decoders keep causal streaming inside the real diffusers Wan decoder, and the swap plans
touch exactly the layers Flash-VAED swaps (LTX: upsamplers and up2 stay)."""

import copy

import pytest
import torch

from lab.ops.operators import DepthwiseSeparable3d, FrameConv2d, SwapOp
from lab.ops.swap import apply_operators, swap_decoder

ALL_OPS_PLAN = {"conv_in": "conv2plus1d", "mid": "dwsep3d", "up0": "conv2plus1d", "up1": "dwsep3d",
                "up2": "conv2d", "up3": "conv2plus1d", "head": "dwsep3d"}


def chunked_decode(adapter, z, sizes):
    """Drive Wan's own cache bookkeeping with multi-frame chunks (the first must be one frame). The
    block-level cache then hands each op 1 or 2 frames of history at varying offsets, so an op that
    mishandles cache_x gives a different result than the one-frame-at-a-time decode."""
    vae = adapter.vae
    vae.clear_cache()
    x = vae.post_quant_conv(adapter.denormalize(z))
    outs, t = [], 0
    with torch.no_grad():
        for i, n in enumerate(sizes):
            vae._conv_idx = [0]
            outs.append(vae.decoder(x[:, :, t:t + n], feat_cache=vae._feat_map, feat_idx=vae._conv_idx,
                                    first_chunk=i == 0))
            t += n
    vae.clear_cache()
    return torch.cat(outs, 2).clamp(-1, 1)


@pytest.mark.parametrize("plan", ["flash-vaed", "all-ops"])
def test_swapped_wan_streams_causally(tiny_wan, plan):
    swapped, summary = swap_decoder(tiny_wan, ALL_OPS_PLAN if plan == "all-ops" else plan)
    assert summary["params_after"] < summary["params_before"]
    z = torch.randn(1, 16, 4, 3, 3)
    whole = swapped.decode(z)
    assert whole.shape == (1, 3, 13, 24, 24)
    # Streamed one latent frame at a time == whole clip.
    chunks = list(swapped.decode_stream(z))
    assert [c.shape[2] for c in chunks] == [1, 4, 4, 4]
    torch.testing.assert_close(torch.cat(chunks, 2), whole, rtol=0, atol=1e-5)
    # Multi-frame chunks through the cache == whole clip.
    torch.testing.assert_close(chunked_decode(swapped, z, [1, 2, 1]), whole, rtol=1e-4, atol=1e-4)
    # A change to latent 2 leaves frames before its own (1 + 4*(2-1) = 5) unchanged, and changes later ones.
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    other = swapped.decode(z2)
    assert torch.equal(other[:, :, :5], whole[:, :, :5])
    assert not torch.allclose(other[:, :, 5:], whole[:, :, 5:])
    # The swap changed the function (it is an initialisation, not an identity).
    assert not torch.allclose(whole, tiny_wan.decode(z), atol=1e-3)


def test_teacher_chunked_decode_matches(tiny_wan):
    """The reference the test above relies on: the unswapped decoder agrees with itself chunked."""
    z = torch.randn(1, 16, 4, 3, 3)
    torch.testing.assert_close(chunked_decode(tiny_wan, z, [1, 2, 1]), tiny_wan.decode(z), rtol=1e-5, atol=1e-5)


def test_rebuild_without_init_then_load_state_dict(tiny_wan):
    """How a saved student is restored: same plan with default init, then the saved weights."""
    swapped, _ = swap_decoder(tiny_wan, "flash-vaed")
    fresh = copy.deepcopy(tiny_wan)
    apply_operators(fresh.vae, "wan", "flash-vaed", init_from_existing=False)
    fresh.vae.load_state_dict(swapped.vae.state_dict(), strict=True)
    z = torch.randn(1, 16, 2, 2, 2)
    assert torch.equal(fresh.decode(z), swapped.decode(z))


def test_flash_vaed_wan_layer_choices(tiny_wan):
    swapped, summary = swap_decoder(tiny_wan, "flash-vaed")
    dec = swapped.vae.decoder
    assert isinstance(dec.mid_block.resnets[0].conv1, DepthwiseSeparable3d)
    assert isinstance(dec.up_blocks[1].resnets[2].conv2, DepthwiseSeparable3d)
    assert isinstance(dec.up_blocks[3].resnets[0].conv1, FrameConv2d)
    # Kept: temporal upsampling conv, conv_in, head, attention, 1x1x1 shortcut.
    for m in (dec.up_blocks[0].upsamplers[0].time_conv, dec.conv_in, dec.conv_out,
              dec.up_blocks[1].resnets[0].conv_shortcut):
        assert type(m).__name__ == "WanCausalConv3d"
    assert not any(isinstance(m, SwapOp) for m in dec.mid_block.attentions.modules())
    assert summary["stages"]["conv_in"]["layers"] == 0 and summary["stages"]["head"]["layers"] == 0
    assert summary["stages"]["up3"]["layers"] == 6  # 3 resnets x (conv1, conv2)


def test_flash_vaed_ltx_layer_choices(tiny_ltx):
    swapped, summary = swap_decoder(tiny_ltx, "flash-vaed")
    dec = swapped.vae.decoder
    assert isinstance(dec.mid_block.resnets[0].conv1, DepthwiseSeparable3d)
    assert dec.mid_block.resnets[0].conv1.time.mode == "replicate-symmetric"  # LTX's decoder is not causal
    assert type(dec.up_blocks[1].upsamplers[0].conv).__name__ == "LTXVideoCausalConv3d"  # depth-to-space stays
    assert not any(isinstance(m, SwapOp) for m in dec.up_blocks[2].modules())  # up2 stays 3D
    assert isinstance(dec.up_blocks[3].resnets[0].conv1, FrameConv2d)
    assert isinstance(dec.up_blocks[3].conv_in.conv1, FrameConv2d)
    assert not summary["causal"]
    z = torch.randn(1, 128, 2, 2, 2)
    assert swapped.decode(z).shape == tiny_ltx.decode(z).shape


def test_auto_collapse_picks_the_lower_measured_error(tiny_wan):
    z = torch.randn(1, 16, 3, 2, 2)
    _, summary = swap_decoder(tiny_wan, {"up3": "conv2d"}, calibration=z)
    for row in summary["replaced"]:
        errs = row["collapse_rel_err"]
        assert row["collapse"] == min(errs, key=errs.get)

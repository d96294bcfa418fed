"""The fused runtime of Wan 2.2 (lab.families.wan.v22.fused) on the tiny config of the real class
(AutoencoderKLWan with residual up blocks, 48 latent channels, patch size 2) and a pruned student of it: the
same decode as eager, chunked and streamed; the DupUp3D shortcut as a broadcast view, bit for bit."""

import pytest
import torch
from diffusers.models.autoencoders.autoencoder_kl_wan import DupUp3D

from lab.families.wan.v22.fused import FusedWan22, add_dup_up_
from lab.families.wan.v22.student import IndexedDupUp3D
from lab.prune import prune
from lab.runtime.fused import is_fusable

from fused_checks import assert_fused_matches_eager, fused_error_in_bf16  # tests/runtime/fused_checks.py

CL3 = torch.channels_last_3d


@pytest.mark.parametrize("cin,cout,ft", [(8, 8, 2), (8, 4, 2), (8, 8, 1), (8, 4, 1), (16, 2, 2), (32, 4, 2)])
@pytest.mark.parametrize("first_chunk", [False, True])
def test_dup_up_as_a_view_is_the_shortcut(cin, cout, ft, first_chunk):
    sc = DupUp3D(cin, cout, factor_t=ft, factor_s=2)
    x = torch.randn(1, cin, 1 if first_chunk else 3, 3, 5).contiguous(memory_format=CL3)
    ref = sc(x, first_chunk=first_chunk)
    y = torch.randn_like(ref).contiguous(memory_format=CL3)
    expected = y + ref
    assert add_dup_up_(y, sc, x, first_chunk)
    assert torch.equal(y, expected)


def test_dup_up_that_is_no_view_is_left_to_the_module():
    y = torch.zeros(1, 8, 2, 6, 10)
    assert not add_dup_up_(y, DupUp3D(4, 8, factor_t=2, factor_s=2), torch.randn(1, 4, 1, 3, 5), False)
    assert not add_dup_up_(y, IndexedDupUp3D(4, 8, 2, 2, list(range(4)) * 16), torch.randn(1, 4, 1, 3, 5), False)
    assert torch.equal(y, torch.zeros_like(y))


@pytest.fixture(scope="module")
def wan22():
    from lab.models import load_decoder
    torch.manual_seed(0)
    teacher = load_decoder("wan2.2-tiny")
    z = torch.randn(1, 48, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    student, _ = prune(teacher, 0.5, "independence", latents=[z], operators="flash-vaed")
    assert any(isinstance(m, IndexedDupUp3D) for m in student.vae.modules())  # the gather shortcut runs too
    return {"teacher": teacher, "flash": student}


@pytest.mark.parametrize("which", ["teacher", "flash"])
@pytest.mark.parametrize("subpixel", [False, True])
def test_fused_wan22_decode_matches_eager(wan22, which, subpixel):
    dec = wan22[which]
    assert is_fusable(dec)
    z = torch.randn(1, 48, 4, 2, 3, generator=torch.Generator().manual_seed(2))

    def installed(dec):
        assert isinstance(dec.fused, FusedWan22)
    assert_fused_matches_eager(dec, z, check=installed, subpixel=subpixel)


@pytest.mark.parametrize("which", ["teacher", "flash"])
def test_fused_wan22_decode_in_bf16(wan22, which):
    z = torch.randn(1, 48, 3, 2, 3, generator=torch.Generator().manual_seed(3))
    psnr, err = fused_error_in_bf16(wan22[which], z)
    assert psnr >= 50 and err <= 5e-2, (psnr, err)

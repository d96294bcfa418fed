"""The full-size Wan 2.1 architecture (random weights): the Flash-VAED swap's parameter count, with and
without issue 4's pruning, and causal streaming of 81 frames from 21 latents at a tiny spatial size."""

import pytest
import torch

from lab.ops.swap import swap_decoder

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wan21(_one_thread):
    from lab.models import load_decoder
    return load_decoder("wan2.1", weights="random")


def _expected_swapped_params(teacher) -> int:
    """Counted from the teacher's own conv shapes, independently of lab.ops: each 3x3x3 resnet conv
    of mid/up0/up1 becomes depthwise (in*27) + pointwise (in*out + bias); each one of up2/up3
    becomes a 2D 3x3 conv (out*in*9 + bias). Everything else is unchanged."""
    dec = teacher.vae.decoder
    total = teacher.decoder_params()
    blocks = {"dw": [dec.mid_block] + list(dec.up_blocks[:2]), "2d": list(dec.up_blocks[2:])}
    for how, mods in blocks.items():
        for block in mods:
            for res in block.resnets:
                for conv in (res.conv1, res.conv2):
                    o, i = conv.weight.shape[:2]
                    total -= o * i * 27
                    total += i * 27 + i * o if how == "dw" else o * i * 9
    return total


def assert_streams_causally(dec, z):
    whole = dec.decode(z)
    assert whole.shape[2] == 81
    chunks = list(dec.decode_stream(z))
    assert [c.shape[2] for c in chunks] == [1] + [4] * 20
    torch.testing.assert_close(torch.cat(chunks, 2), whole, rtol=0, atol=1e-5)
    z2 = z.clone()
    z2[:, :, 10] += 1.0
    other = dec.decode(z2)
    first = 1 + 4 * 9  # latent 10's first output frame
    assert torch.equal(other[:, :, :first], whole[:, :, :first])
    assert not torch.allclose(other[:, :, first:], whole[:, :, first:])


def test_flash_vaed_swap_of_full_wan(wan21):
    swapped, summary = swap_decoder(wan21, "flash-vaed")
    assert summary["params_before"] == wan21.decoder_params() == 73_295_603
    assert summary["params_after"] == swapped.decoder_params() == _expected_swapped_params(wan21)
    assert summary["params_after"] == 9_054_899
    assert_streams_causally(swapped, torch.randn(1, 16, 21, 2, 2))


def test_flash_vaed_pruned_and_swapped_student_is_about_5_9m(wan21):
    from lab.prune import prune

    # Random channel choice without folding: the parameter count and streaming depend on the widths
    # and operators only, and this needs no calibration decode of the full-size teacher.
    student, info = prune(wan21, "flash-vaed", criterion="random", fold=False, operators="flash-vaed")
    assert info["widths"]["up2.stream"] == 24 and info["widths"]["up3.stream"] == 12
    n = student.decoder_params()
    assert 5_600_000 < n < 6_200_000, n  # the authors' student: ~5.9M
    assert_streams_causally(student, torch.randn(1, 16, 21, 2, 2))

"""Chunked causal decoding (lab.runtime.chunked): several latent frames per call after the first give
the reference decode (diffusers' own loop for teachers) up to float summation order, for teachers,
pruned students and operator-swapped students, whole-clip and streamed, forward and backward."""

import pytest
import torch

from lab.errors import LabError, LatentShapeError
from lab.prune import prune
from lab.runtime import choose_chunk, chunk_bounds, set_chunk

TOL = 2e-5  # float32, [-1, 1] video


@pytest.fixture(scope="module")
def z():
    return torch.randn(1, 16, 6, 4, 4, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def students(tiny_wan, z):
    pruned, _ = prune(tiny_wan, 0.5, "independence", latents=[z])
    swapped, _ = prune(tiny_wan, 0.5, "independence", latents=[z], operators="flash-vaed")
    return {"pruned": pruned, "flash": swapped}


def test_chunk_bounds():
    assert chunk_bounds(6, 2) == [(0, 1), (1, 3), (3, 5), (5, 6)]
    assert chunk_bounds(1, 4) == [(0, 1)]
    with pytest.raises(LabError, match=">= 1"):
        chunk_bounds(6, 0)


@pytest.mark.parametrize("which", ["teacher", "pruned", "flash"])
def test_chunked_decode_matches_the_reference(tiny_wan, students, z, which):
    dec = tiny_wan if which == "teacher" else students[which]
    set_chunk(dec, 1)
    ref = dec.decode(z)
    try:
        for chunk in (2, 3, 5, 8):
            out = set_chunk(dec, chunk).decode(z)
            assert out.shape == ref.shape
            assert (out - ref).abs().max() < TOL, chunk
    finally:
        set_chunk(dec, 1)


def test_stream_takes_chunks_after_the_first_frame(students, z):
    dec = students["flash"]
    ref = dec.decode(z)
    s = dec.stream()
    with pytest.raises(LatentShapeError, match="first push"):
        s.push(z[:, :, :2])
    parts = [s.push(z[:, :, a:b]) for a, b in [(0, 1), (1, 4), (4, 5), (5, 6)]]
    assert [p.shape[2] for p in parts] == [1, 12, 4, 4]
    assert (torch.cat(parts, 2) - ref).abs().max() < TOL


def test_chunked_gradients_match(students, z):
    # Students train through decode_with_grad: chunking must not change the gradients either.
    dec = students["pruned"]
    grads = []
    for chunk in (1, 3):
        set_chunk(dec, chunk)
        dec.vae.zero_grad()
        dec.decode_with_grad(z).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in dec.vae.parameters() if p.grad is not None]))
    set_chunk(dec, 1)
    assert (grads[0] - grads[1]).abs().max() <= 1e-4 * grads[0].abs().max()


def test_choose_chunk_times_and_sets_the_fastest(students, z):
    dec = students["pruned"]
    report = choose_chunk(dec, z, candidates=(1, 2, 9), repeats=1)
    assert set(report["seconds"]) == {1, 2}  # 9 > the 5 frames after the first: skipped
    assert dec.chunk_frames == report["chunk"] == min(report["seconds"], key=report["seconds"].get)
    set_chunk(dec, 1)


def test_non_wan_decoders_are_refused(tiny_ltx):
    with pytest.raises(LabError, match="no per-chunk causal loop"):
        set_chunk(tiny_ltx, 2)

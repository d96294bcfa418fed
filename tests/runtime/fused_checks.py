"""The checks every fused path of a causal decoder passes against eager (imported by the fused-runtime tests,
from this folder)."""

import copy

import torch

from lab.runtime import set_chunk
from lab.runtime.chunked import is_chunkable
from lab.runtime.fused import set_fused
from lab.runtime.timing import video_error


def assert_fused_matches_eager(dec, z: torch.Tensor, setup=None, check=None, **options) -> None:
    """Fused (``set_fused(dec, **options)``), the decode of ``z`` equals eager within 2e-5 in float32: whole, in
    chunks of 3 (a decoder with a per-chunk loop: Wan's), and streamed (the first latent frame alone, then any
    number per push). ``setup(dec)`` runs once
    the runtime is installed, ``check(dec)`` after the decodes, the runtime still installed. Removed, the decoder
    is the eager model again, bit for bit."""
    ref = dec.decode(z)
    set_fused(dec, **options)
    try:
        if setup is not None:
            setup(dec)
        for chunk in (1, 3) if is_chunkable(dec) else (1,):
            if is_chunkable(dec):
                set_chunk(dec, chunk)
            assert (dec.decode(z) - ref).abs().max() < 2e-5, f"chunk {chunk}"
        if is_chunkable(dec):
            set_chunk(dec, 1)
        stream = dec.stream()
        parts = [stream.push(z[:, :, :1]), stream.push(z[:, :, 1:2]), stream.push(z[:, :, 2:])]
        assert (torch.cat(parts, 2) - ref).abs().max() < 2e-5
        if check is not None:
            check(dec)
    finally:
        if is_chunkable(dec):
            set_chunk(dec, 1)
        set_fused(dec, False)
    assert dec.fused is None and torch.equal(dec.decode(z), ref)


def fused_error_in_bf16(dec, z: torch.Tensor, **options) -> tuple[float, float]:
    """(PSNR, max abs error) of ``dec``'s fused decode of ``z`` against its eager decode, both in bf16, on a copy:
    a float32 decoder cast to bf16 and back keeps bf16-rounded weights, and ``dec`` may be a session fixture that
    later tests compare with its saved copies."""
    dec = copy.deepcopy(dec).to(torch.bfloat16)
    z = z.to(torch.bfloat16)
    ref = dec.decode(z)
    set_fused(dec, **options)
    return video_error(dec.decode(z), ref)
